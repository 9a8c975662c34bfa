//! Colours for people at a terminal: never when stdout is a pipe or file, never with
//! `NO_COLOR` set, so scripts always read plain text.

use std::io::IsTerminal;

/// Whether output may carry ANSI colours: stdout is a terminal and `NO_COLOR` is unset
/// (<https://no-color.org>: any non-empty value disables colour).
pub fn enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// A colour for [`paint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Green,
    Yellow,
    Red,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Red => "31",
            Color::Bold => "1",
        }
    }
}

/// `text` in `color` when `on`, else `text` unchanged.
pub fn paint(on: bool, color: Color, text: &str) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", color.code())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_has_no_escape_codes() {
        assert_eq!(paint(false, Color::Red, "x"), "x");
        assert_eq!(paint(true, Color::Green, "ok"), "\x1b[32mok\x1b[0m");
    }

    #[test]
    fn tests_do_not_run_on_a_terminal_so_colour_is_off() {
        // nextest and cargo test capture stdout; with NO_COLOR it is off regardless.
        if !std::io::stdout().is_terminal() {
            assert!(!enabled());
        }
    }
}
