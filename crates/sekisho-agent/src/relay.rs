//! What the agent's roles see of its relay links: the active connection and a way to report on
//! route listeners. The bottom of the agent's modules: [`crate::link`] keeps the links alive and
//! runs the roles; the roles ([`crate::front`], [`crate::pairs`]) use only this, so the modules
//! depend one way (link → front → pairs → relay).

use sekisho_tunnel::Connection;
use sekisho_tunnel::proto::{self, AgentMsg};

/// A live relay connection, shared with the front listeners.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: Connection,
    /// Unique per connection (across all relays): end-to-end sessions are keyed by it.
    pub(crate) generation: u64,
}

/// Where the front role reports its route listeners: every connected relay.
pub(crate) trait RouteReports: Send + Sync {
    fn report(&self, route_id: &str, bound: Option<String>, error: Option<String>);
}

/// Tells the relay about a route listener.
pub(crate) fn report(conn: &Connection, route_id: &str, bound: Option<String>, error: Option<String>) {
    let _ = conn.send_control(proto::encode(&AgentMsg::RouteStatus { route_id: route_id.to_owned(), bound, error }));
}
