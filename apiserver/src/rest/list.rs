//! GET on a collection: list with label/field selectors and `limit` + `continue` paging.
//!
//! Paging note: Kubernetes serves every page of a paged list from the snapshot of the
//! first page (etcd MVCC). tug's store keeps no MVCC snapshots, so each page reads the
//! *current* state after the last key of the previous page: an object created or
//! deleted behind the cursor during paging is missed or seen, exactly once either way.
//! The token still carries the first page's revision, which every page reports as the
//! list's `resourceVersion` so a watch started from it never misses an event.

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::Req;
use crate::error::{ApiError, Result};
use crate::negotiate::JsonListWriter;
use crate::object;
use crate::selector::Selectors;
use crate::state::AppState;

/// Store reads per round trip when a selector filters the page.
const SCAN_CHUNK: usize = 500;

pub async fn list(state: &AppState, req: &Req) -> Result<Response> {
    let info = req.info();
    let selectors = Selectors::parse(info, req.param("labelSelector"), req.param("fieldSelector"))?;
    let limit = match req.param("limit").filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid limit {l:?}: must be a positive integer"
                )))
            }
        },
    };
    let prefix = info.prefix(req.target.namespace.as_deref());
    let token = match req.param("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(ContinueToken::decode(c, &prefix)?),
    };
    let list_meta = |page: &PageEnd| {
        let mut meta = json!({"resourceVersion": page.revision.to_string()});
        if let Some(next) = &page.continue_token {
            meta["continue"] = json!(next);
        }
        meta
    };
    if req.out.streams_lists() {
        let mut writer = JsonListWriter::new();
        let end = scan_page(
            state,
            req,
            &prefix,
            &selectors,
            limit,
            token.as_ref(),
            |obj| writer.push(&obj),
        )
        .await?;
        return Ok(writer.finish(info, &list_meta(&end)));
    }
    let page = read_page(state, req, &prefix, &selectors, limit, token.as_ref()).await?;
    let meta = list_meta(&page.end);
    Ok(req.out.list(info, page.items, meta))
}

pub struct Page {
    pub items: Vec<Value>,
    pub end: PageEnd,
}

/// Where a page ended: the revision it was read at and the token for the next page.
pub struct PageEnd {
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// Reads matching objects under `prefix`, at most `limit` of them, after the token's key.
pub async fn read_page(
    state: &AppState,
    req: &Req,
    prefix: &str,
    selectors: &Selectors,
    limit: Option<usize>,
    token: Option<&ContinueToken>,
) -> Result<Page> {
    let mut items = Vec::new();
    let end = scan_page(state, req, prefix, selectors, limit, token, |obj| {
        items.push(obj);
        Ok(())
    })
    .await?;
    Ok(Page { items, end })
}

/// Reads one page of matching objects, handing each to `sink` in key order.
pub async fn scan_page(
    state: &AppState,
    req: &Req,
    prefix: &str,
    selectors: &Selectors,
    limit: Option<usize>,
    token: Option<&ContinueToken>,
    mut sink: impl FnMut(Value) -> Result<()>,
) -> Result<PageEnd> {
    let mut matched = 0usize;
    let mut start_after = token.map(|t| t.start.clone());
    let mut revision = token.map(|t| t.rv);
    let mut read = req.read_mode();
    loop {
        let chunk = match limit {
            None => None,
            Some(l) if selectors.is_empty() => Some(l - matched),
            Some(l) => Some((l - matched).max(SCAN_CHUNK)),
        };
        let res = state
            .store
            .list(prefix, start_after.as_deref(), chunk, read)
            .await?;
        // Later chunks of one request need not be quorum reads again.
        read = tug_store::Read::Local;
        revision.get_or_insert(res.revision);
        let mut last_key = None;
        let mut stopped_early = false;
        for kv in &res.kvs {
            last_key = Some(kv.key.clone());
            let obj = object::decode(kv)?;
            if selectors.matches(&obj) {
                sink(obj)?;
                matched += 1;
                if limit.is_some_and(|l| matched >= l) {
                    stopped_early = true;
                    break;
                }
            }
        }
        let rest_of_chunk_unread =
            stopped_early && last_key.as_deref() != res.kvs.last().map(|k| k.key.as_str());
        let revision = revision.unwrap_or(res.revision);
        if limit.is_some_and(|l| matched >= l) {
            let continue_token = if rest_of_chunk_unread || res.more {
                last_key.map(|start| {
                    ContinueToken {
                        rv: revision,
                        start,
                    }
                    .encode()
                })
            } else {
                None
            };
            return Ok(PageEnd {
                revision,
                continue_token,
            });
        }
        if !res.more || last_key.is_none() {
            return Ok(PageEnd {
                revision,
                continue_token: None,
            });
        }
        start_after = last_key;
    }
}

/// The opaque `continue` value: the first page's revision and the last key returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContinueToken {
    pub rv: u64,
    pub start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        let json = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": self.start});
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    /// Decodes a token and checks that it belongs to this collection.
    pub fn decode(token: &str, prefix: &str) -> Result<ContinueToken> {
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "invalid continue token: {why}; restart the list without `continue`"
            ))
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad("not base64"))?;
        let t: ContinueToken =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a token of this server"))?;
        if !t.start.starts_with(prefix) {
            return Err(bad("it was issued for another collection"));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_are_bound_to_their_collection() {
        let t = ContinueToken {
            rv: 42,
            start: "/registry/pods/default/b".into(),
        };
        let s = t.encode();
        assert_eq!(
            ContinueToken::decode(&s, "/registry/pods/default/").unwrap(),
            t
        );
        assert_eq!(
            ContinueToken::decode(&s, "/registry/secrets/default/")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            ContinueToken::decode("!!", "/registry/pods/")
                .unwrap_err()
                .code,
            400
        );
    }
}
