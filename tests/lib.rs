//! Integration tests: the real binary against temporary folders, one file
//! per feature, named after the behaviour they show.

mod fault_proxy;
mod support;

mod check;
mod check_conformance;
mod completions;
mod differential;
mod environment_identity;
mod environments;
mod faults;
mod grouped;
mod help;
mod hostile;
mod jinja2_conformance;
mod key_guards;
mod keys;
mod mage_files;
mod mage_import;
mod names;
mod output_guards;
mod outputs;
mod postgres;
mod readme;
mod reliability;
mod render;
mod run;
mod secrets;
mod snapshots;
mod value_integrity;
mod watch;
mod watch_selection;
