//! One integration test binary (link time on two cores): every module below talks to the real
//! `certgate` binary or the library over real files, sockets and databases.

mod support;

mod admin_api;
mod alerts;
mod alerts_mail;
mod apply;
mod candidates;
mod cluster;
mod conformance;
mod console;
mod crash_safety;
mod expiry;
mod gateway;
mod gateway_apps;
mod hostile_clients;
mod hostile_partners;
mod import;
mod incremental;
mod interop;
mod layers;
mod ops;
mod outage;
mod package;
mod partner_certificates;
mod probe;
mod renegotiation;
mod secrets;
mod store;
mod store_copy;
mod store_race;
