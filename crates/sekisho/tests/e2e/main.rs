//! End-to-end tests: the real `sekisho` binary as relay and agents, real clients and servers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]
#![allow(unreachable_pub, reason = "test modules share helpers inside one test binary")]

mod browser_util;
mod harness;
mod latin;
mod rawagent;
mod ssh_util;
mod targets;

mod admin;
mod audit_page;
mod backup;
mod bad_input;
mod bastion;
mod bastion_edges;
mod bastion_telnet;
mod browser;
mod cli_ja;
mod cluster;
mod crash;
mod deep_input;
mod egress;
mod evidence;
mod fail_closed;
mod gateway;
mod identity;
mod lifecycle;
mod limits;
mod live;
mod metrics;
mod oidc;
mod packaging;
mod scopes;
mod siem;
mod tunnel;
mod web;
mod zones;
