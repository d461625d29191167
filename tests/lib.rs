//! Integration tests: the real binary against temporary folders, one file
//! per feature, named after the behaviour they show.

mod support;

mod check;
mod render;
mod secrets;
mod watch;
