//! The verbs beyond apply/get/delete (config, version, completion, create, get -o
//! jsonpath, describe, scale, rollout, cordon/uncordon/drain, events) against a real
//! in-process apiserver with tug-controllers, one module per verb.

mod support;

mod completion;
mod config;
mod cordon;
mod create;
mod describe;
mod drain;
mod events;
mod get_output;
mod rollout;
mod scale;
mod version;
