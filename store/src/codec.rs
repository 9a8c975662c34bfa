//! Conversions between the contract types and their protobuf encodings (raft entries, sled values, peer RPCs).

use prost::Message as _;

use crate::pb;
use crate::{Error, Event, EventKind, KeyValue, Op, Precondition, Result, TxnResult};

/// Decodes a prost message stored on disk or received from a peer.
pub(crate) fn decode<M: prost::Message + Default>(bytes: &[u8], what: &str) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::Storage(format!("corrupt {what}: {e}")))
}

pub(crate) fn kv_to_pb(kv: &KeyValue) -> pb::KeyValue {
    pb::KeyValue {
        key: kv.key.clone(),
        value: kv.value.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
    }
}

pub(crate) fn kv_from_pb(kv: pb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
    }
}

/// Encodes a value for the `kv` tree: the key lives in the sled key, so it is left out.
pub(crate) fn encode_stored(value: &[u8], create_revision: u64, mod_revision: u64) -> Vec<u8> {
    pb::KeyValue {
        key: String::new(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    }
    .encode_to_vec()
}

pub(crate) fn decode_stored(key: &[u8], bytes: &[u8]) -> Result<KeyValue> {
    let mut kv: pb::KeyValue = decode(bytes, "stored object")?;
    kv.key = String::from_utf8(key.to_vec())
        .map_err(|e| Error::Storage(format!("stored key is not UTF-8: {e}")))?;
    Ok(kv_from_pb(kv))
}

pub(crate) fn op_to_pb(op: &Op) -> pb::Op {
    let (delete, key, value, precondition) = match op {
        Op::Put {
            key,
            value,
            precondition,
        } => (false, key, value.as_slice(), precondition),
        Op::Delete { key, precondition } => (true, key, &[][..], precondition),
    };
    let (kind, mod_revision) = match precondition {
        Precondition::None => (pb::PreconditionKind::PreconditionNone, 0),
        Precondition::Absent => (pb::PreconditionKind::PreconditionAbsent, 0),
        Precondition::ModRevision(r) => (pb::PreconditionKind::PreconditionModRevision, *r),
        Precondition::Exists => (pb::PreconditionKind::PreconditionExists, 0),
    };
    pb::Op {
        delete,
        key: key.clone(),
        value: value.to_vec(),
        precondition: kind as i32,
        mod_revision,
    }
}

pub(crate) fn op_from_pb(op: pb::Op) -> Result<Op> {
    let precondition = match pb::PreconditionKind::try_from(op.precondition) {
        Ok(pb::PreconditionKind::PreconditionNone) => Precondition::None,
        Ok(pb::PreconditionKind::PreconditionAbsent) => Precondition::Absent,
        Ok(pb::PreconditionKind::PreconditionModRevision) => {
            Precondition::ModRevision(op.mod_revision)
        }
        Ok(pb::PreconditionKind::PreconditionExists) => Precondition::Exists,
        Err(_) => {
            return Err(Error::Storage(format!(
                "unknown precondition kind {} in op on {:?}",
                op.precondition, op.key
            )))
        }
    };
    Ok(if op.delete {
        Op::Delete {
            key: op.key,
            precondition,
        }
    } else {
        Op::Put {
            key: op.key,
            value: op.value,
            precondition,
        }
    })
}

pub(crate) fn result_to_pb(result: &TxnResult) -> pb::TxnResult {
    match result {
        TxnResult::Applied { revision, kv } => pb::TxnResult {
            applied: true,
            revision: *revision,
            kv: Some(kv_to_pb(kv)),
        },
        TxnResult::Failed { current } => pb::TxnResult {
            applied: false,
            revision: 0,
            kv: current.as_ref().map(kv_to_pb),
        },
    }
}

pub(crate) fn result_from_pb(result: pb::TxnResult) -> Result<TxnResult> {
    if result.applied {
        let kv = result
            .kv
            .ok_or_else(|| Error::Transport("applied txn result without a value".into()))?;
        Ok(TxnResult::Applied {
            revision: result.revision,
            kv: kv_from_pb(kv),
        })
    } else {
        Ok(TxnResult::Failed {
            current: result.kv.map(kv_from_pb),
        })
    }
}

pub(crate) fn event_to_pb(event: &Event) -> pb::Event {
    let kind = match event.kind {
        EventKind::Added => pb::EventKind::EventAdded,
        EventKind::Modified => pb::EventKind::EventModified,
        EventKind::Deleted => pb::EventKind::EventDeleted,
    };
    pb::Event {
        kind: kind as i32,
        kv: Some(kv_to_pb(&event.kv)),
        prev: event.prev.as_ref().map(kv_to_pb),
    }
}

pub(crate) fn event_from_pb(event: pb::Event) -> Result<Event> {
    let kind = match pb::EventKind::try_from(event.kind) {
        Ok(pb::EventKind::EventAdded) => EventKind::Added,
        Ok(pb::EventKind::EventModified) => EventKind::Modified,
        Ok(pb::EventKind::EventDeleted) => EventKind::Deleted,
        Err(_) => return Err(Error::Storage(format!("unknown event kind {}", event.kind))),
    };
    let kv = event
        .kv
        .ok_or_else(|| Error::Storage("stored event without a value".into()))?;
    Ok(Event {
        kind,
        kv: kv_from_pb(kv),
        prev: event.prev.map(kv_from_pb),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_protobuf() {
        let cases = [
            Op::Put {
                key: "/a".into(),
                value: b"v".to_vec(),
                precondition: Precondition::None,
            },
            Op::Put {
                key: "/b".into(),
                value: vec![],
                precondition: Precondition::Absent,
            },
            Op::Delete {
                key: "/c".into(),
                precondition: Precondition::ModRevision(7),
            },
            Op::Delete {
                key: "/d".into(),
                precondition: Precondition::Exists,
            },
        ];
        for op in cases {
            assert_eq!(op_from_pb(op_to_pb(&op)).unwrap(), op);
        }
    }
}
