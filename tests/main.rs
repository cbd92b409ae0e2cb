//! One integration test binary (link time on two cores): every module below talks to the real
//! `certgate` binary or the library over real files, sockets and databases.

mod support;

mod gateway;
mod import;
mod interop;
mod store;
