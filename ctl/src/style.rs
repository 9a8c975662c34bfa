//! Colours for people at a terminal: never when stdout is a pipe or file, never with
//! `NO_COLOR` set, so scripts always read plain text.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the `tug` binary, whose output really is stdout. Library callers (tests, other
/// crates) hand `run` their own writers, so they never get colour.
static STDOUT_IS_OUTPUT: AtomicBool = AtomicBool::new(false);

/// Called by `main`: output goes to the process's stdout, so its terminal decides.
pub fn output_is_stdout() {
    STDOUT_IS_OUTPUT.store(true, Ordering::Relaxed);
}

/// Whether output may carry ANSI colours: it goes to stdout, stdout is a terminal and
/// `NO_COLOR` is unset (<https://no-color.org>: any non-empty value disables colour).
pub fn enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    STDOUT_IS_OUTPUT.load(Ordering::Relaxed) && !no_color && std::io::stdout().is_terminal()
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
    fn library_callers_never_get_colour() {
        // Only the binary declares that its output is the terminal.
        assert!(!enabled());
    }
}
