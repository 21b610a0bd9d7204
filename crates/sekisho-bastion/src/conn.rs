//! One SSH connection to the bastion: authentication, then its channels.
//!
//! Channel requests (PTY, shell, exec, subsystem, window change, signals) arrive here in order;
//! each is answered at once and passed on to the target channel, so a request and the data
//! after it reach the target in the order the user sent them. Requests the bastion does not carry
//! (X11, port forwarding) are refused. Agent forwarding is accepted but used only to log in to
//! targets whose credential is the user's own agent (it is not passed on to the target).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, Response, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty, Sig};
use sekisho_audit::Decision as AuditDecision;
use sekisho_gate::AuthMethod;
use sekisho_store::now_ms;

use super::auth::{Authed, Candidate, find_user, login_event};
use super::channel::{Chan, Kind, PtySize};
use super::{Bastion, channel, menu, target};
use sekisho_door::sessions::login_wait_ms;
use sekisho_door::sessions::totp_step;

const TOTP_PROMPT: &str = "TOTP code / 確認コード: ";

pub(crate) struct Conn {
    b: Arc<Bastion>,
    peer: SocketAddr,
    session_id: String,
    /// The user who passed the first factor, and how.
    first: Option<(Candidate, &'static str)>,
    authed: Option<Arc<Authed>>,
    /// Direct mode: the connected target, shared by the connection's channels.
    target: Arc<tokio::sync::OnceCell<Result<Arc<target::Connected>, String>>>,
    /// Set when the user forwards her agent (`ssh -A`).
    agent_forwarded: tokio::sync::watch::Sender<bool>,
    channels: HashMap<ChannelId, Arc<Chan>>,
    /// Public keys refused when offered, recorded when the connection ends without a login.
    offers: Offers,
    /// Set at login, for the login window (`BastionConfig::login_window`).
    logged_in: Arc<std::sync::atomic::AtomicBool>,
}

/// Most refused key offers remembered per connection (the client gets six attempts anyway).
const MAX_OFFERS: usize = 16;

/// Public keys refused when offered, before any signature. OpenSSH offers each key it has
/// (a user's agent may hold several) and signs only with one the server takes, so a refused
/// offer is not yet a failed login: the refusals become one audit event per login name, and
/// one failure for the address, only if the connection ends without logging in.
#[derive(Default)]
struct Offers {
    refused: Vec<Refused>,
    count: usize,
}

/// The offers refused for one login name.
struct Refused {
    tenant: String,
    user: String,
    why: Why,
}

enum Why {
    /// The user exists; these keys are not hers.
    Keys(Vec<String>),
    /// The name itself was refused (no such user or tenant, disabled, locked).
    Name(String),
}

impl Offers {
    fn key(&mut self, tenant: &str, user: &str, fingerprint: String) {
        if self.count >= MAX_OFFERS {
            return;
        }
        self.count += 1;
        let same = |r: &&mut Refused| r.tenant == tenant && r.user == user;
        match self.refused.iter_mut().find(same).map(|r| &mut r.why) {
            Some(Why::Keys(keys)) => {
                if !keys.contains(&fingerprint) {
                    keys.push(fingerprint);
                }
            }
            Some(Why::Name(_)) => {}
            None => self.refused.push(Refused {
                tenant: tenant.to_owned(),
                user: user.to_owned(),
                why: Why::Keys(vec![fingerprint]),
            }),
        }
    }

    fn name(&mut self, tenant: &str, user: &str, why: String) {
        if self.count >= MAX_OFFERS || self.refused.iter().any(|r| r.tenant == tenant && r.user == user) {
            return;
        }
        self.count += 1;
        self.refused.push(Refused { tenant: tenant.to_owned(), user: user.to_owned(), why: Why::Name(why) });
    }

    /// (tenant id, login name, reason) of each refusal.
    fn reasons(self) -> Vec<(String, String, String)> {
        self.refused
            .into_iter()
            .map(|Refused { tenant, user, why }| {
                let why = match why {
                    Why::Keys(keys) if keys.len() == 1 => {
                        format!("unknown_key: {} is not a registered key of `{user}`", keys.join(""))
                    }
                    Why::Keys(keys) => format!("unknown_key: {} are not registered keys of `{user}`", keys.join(", ")),
                    Why::Name(why) => why,
                };
                (tenant, user, why)
            })
            .collect()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.authed.is_some() || self.offers.refused.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (state, ip, offers) = (self.b.state.clone(), self.ip(), std::mem::take(&mut self.offers));
        rt.spawn(async move {
            state.limiter.failed(ip);
            for (tenant, user, why) in offers.reasons() {
                let event = login_event(&state, &tenant, &user, ip, "publickey", AuditDecision::Deny, &why);
                if let Err(e) = state.auditor.record_durable(event).await {
                    tracing::error!(error = %e, "cannot record a refused ssh key");
                }
            }
        });
    }
}

impl Conn {
    pub(crate) fn new(b: Arc<Bastion>, peer: SocketAddr, logged_in: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Conn {
            b,
            peer,
            session_id: sekisho_door::secrets::new_id("ss"),
            first: None,
            authed: None,
            target: Arc::default(),
            agent_forwarded: tokio::sync::watch::Sender::new(false),
            channels: HashMap::new(),
            offers: Offers::default(),
            logged_in,
        }
    }

    fn ip(&self) -> std::net::IpAddr {
        sekisho_door::credentials::canonical(self.peer.ip())
    }

    /// Records a refused login and counts it against the address (and the user, if known).
    async fn refuse(
        &self,
        tenant: &str,
        user: &str,
        method: &str,
        reason: &str,
        user_id: Option<&sekisho_store::UserId>,
    ) -> Auth {
        let state = &self.b.state;
        state.limiter.failed(self.ip());
        if let Some(id) = user_id {
            // Refused either way; a count that cannot be stored is logged (the per-address
            // limiter above still counts it).
            if let Err(e) = state.store.login_failed(id, now_ms(), login_wait_ms).await {
                tracing::error!(error = %e, "cannot count a failed ssh login");
            }
        }
        let event = login_event(state, tenant, user, self.ip(), method, AuditDecision::Deny, reason);
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record a refused ssh login");
        }
        Auth::reject()
    }

    /// Records a login the store could not check (fail closed, with the reason), without counting
    /// it against the address or the user: nobody did anything wrong.
    async fn unavailable(&self, tenant: &str, user: &str, method: &str, reason: &str) -> Auth {
        let state = &self.b.state;
        let event = login_event(state, tenant, user, self.ip(), method, AuditDecision::Deny, reason);
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record a refused ssh login");
        }
        Auth::reject()
    }

    /// After the first factor: on to the TOTP code, which every bastion user must have.
    async fn second_factor(&mut self, c: Candidate, method: &'static str) -> Auth {
        if !c.user.totp_enabled {
            let why = "totp_not_enrolled: the bastion needs a second factor; enroll TOTP first";
            return self.refuse(&c.tenant_id, &c.user.name, method, why, None).await;
        }
        self.first = Some((c, method));
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: true,
        }
    }

    async fn lookup(&self, user: &str, method: &str) -> Result<Candidate, Auth> {
        if self.b.state.limiter.blocked(self.ip()) {
            let why = "rate_limited: too many failed attempts from this address; try again in a minute";
            return Err(self.refuse("default", user, method, why, None).await);
        }
        match find_user(&self.b.state, user).await {
            Ok(c) => Ok(c),
            Err((tenant, why)) => Err(self.refuse(&tenant, user, method, &why, None).await),
        }
    }

    fn chan(&self, id: ChannelId) -> Option<Arc<Chan>> {
        self.channels.get(&id).cloned()
    }
}

/// Direct mode (`user+target@relay`): the target is decided, connected and logged in to once per
/// connection (the first channel does it; later channels share it), then the channel is bridged
/// to it. This runs beside the connection's handler, which stores the channel's requests meanwhile:
/// a target that logs in with the user's agent waits for her forwarding request.
async fn direct(
    b: Arc<Bastion>,
    cell: Arc<tokio::sync::OnceCell<Result<Arc<target::Connected>, String>>>,
    name: String,
    chan: Arc<Chan>,
    channel: Channel<Msg>,
    handle: russh::server::Handle,
) {
    let t = cell
        .get_or_init(|| async {
            target::open(&b, target::UserAgent { handle: &handle, chan: &chan }, &name).await.map(Arc::new)
        })
        .await
        .clone();
    match t {
        Ok(t) if t.is_telnet() => super::telnet::run(chan, t, channel, Vec::new()).await,
        Ok(t) => match t.open_channel().await {
            Ok(tc) => chan.attach(t, tc, handle, channel, Vec::new()),
            Err(e) => channel::refuse(channel, format!("target_unreachable: {e}")).await,
        },
        Err(why) => channel::refuse(channel, why).await,
    }
}

fn success(session: &mut Session, channel: ChannelId) -> Result<(), russh::Error> {
    session.channel_success(channel)
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        let c = match find_user(&self.b.state, user).await {
            Ok(c) => c,
            Err((tenant, why)) => {
                self.offers.name(&tenant, user, why);
                return Ok(Auth::reject());
            }
        };
        // A store that does not answer accepts no key (the real login then says why).
        let known = self.b.state.store.find_ssh_key(&c.tenant_id, &fp).await;
        if known.is_ok_and(|k| k.is_some_and(|k| k.user_id == c.user.id)) {
            return Ok(Auth::Accept);
        }
        self.offers.key(&c.tenant_id, &c.user.name, fp);
        Ok(Auth::reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let c = match self.lookup(user, "publickey").await {
            Ok(c) => c,
            Err(a) => return Ok(a),
        };
        let fp = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let known = match self.b.state.store.find_ssh_key(&c.tenant_id, &fp).await {
            Ok(k) => k,
            Err(e) => {
                let why = format!("store_unavailable: cannot read the registered keys of `{}`: {e}", c.user.name);
                return Ok(self.unavailable(&c.tenant_id, &c.user.name, "publickey", &why).await);
            }
        };
        if known.is_none_or(|k| k.user_id != c.user.id) {
            let why = format!("unknown_key: {fp} is not a registered key of `{}`", c.user.name);
            return Ok(self.refuse(&c.tenant_id, &c.user.name, "publickey", &why, None).await);
        }
        Ok(self.second_factor(c, "publickey").await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let c = match self.lookup(user, "password").await {
            Ok(c) => c,
            Err(a) => return Ok(a),
        };
        let (password, phc) = (password.to_owned(), c.user.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || sekisho_door::secrets::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        if !ok {
            let id = c.user.id.clone();
            return Ok(self.refuse(&c.tenant_id, &c.user.name, "password", "bad_password", Some(&id)).await);
        }
        Ok(self.second_factor(c, "password").await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some((c, first)) = self.first.clone().filter(|(c, _)| c.login == super::auth::parse_login(user)) else {
            return Ok(Auth::reject());
        };
        let method = format!("{first}+totp");
        let Some(mut response) = response else {
            return Ok(Auth::Partial {
                name: "Sekisho".into(),
                instructions: "".into(),
                prompts: vec![(TOTP_PROMPT.into(), false)].into(),
            });
        };
        let code = response.next().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let state = self.b.state.clone();
        // A secret this relay cannot unseal refuses by name, never read as an empty secret.
        let Some(secret) = c.user.totp_secret.as_deref().and_then(|s| state.master.open(s)) else {
            let why = "totp_unreadable: the account's TOTP secret cannot be unsealed on this relay";
            return Ok(self.refuse(&c.tenant_id, &c.user.name, &method, why, None).await);
        };
        let unix = (now_ms() / 1000) as u64;
        let Some(step) = totp_step(secret, &code, unix) else {
            let id = c.user.id.clone();
            return Ok(self.refuse(&c.tenant_id, &c.user.name, &method, "bad_totp", Some(&id)).await);
        };
        let fresh = match state.store.use_totp_step(&c.user.id, step).await {
            Ok(fresh) => fresh,
            Err(e) => {
                let why = format!("store_unavailable: cannot check that the code is not replayed: {e}");
                return Ok(self.unavailable(&c.tenant_id, &c.user.name, &method, &why).await);
            }
        };
        if !fresh {
            let why = "totp_replayed: this code was already used; wait for the next one";
            let id = c.user.id.clone();
            return Ok(self.refuse(&c.tenant_id, &c.user.name, &method, why, Some(&id)).await);
        }
        if let Err(e) = state.store.login_succeeded(&c.user.id).await {
            tracing::warn!(error = %e, "cannot note a successful ssh login");
        }
        let groups = state
            .store
            .groups_of(&c.user.id)
            .await
            .map(|gs| gs.into_iter().map(|g| g.name).collect())
            .map_err(|e| sekisho_gate::Unreadable::store(&format!("the groups of `{}`", c.user.name), e));
        let ip = self.ip();
        let event =
            login_event(&state, &c.tenant_id, &c.user.name, ip, &method, AuditDecision::Allow, "login succeeded")
                .detail(format!("session {}", self.session_id));
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record an ssh login");
            return Ok(Auth::reject());
        }
        self.logged_in.store(true, std::sync::atomic::Ordering::Relaxed);
        self.authed = Some(Arc::new(Authed {
            tenant: c.tenant_id.to_string(),
            user: c.user.name.clone(),
            groups,
            method: if first == "publickey" { AuthMethod::PublicKeyTotp } else { AuthMethod::PasswordTotp },
            target: c.login.target.clone(),
            ip,
            country: state.geo.country(ip),
        }));
        self.first = None;
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(authed) = self.authed.clone() else {
            return Ok(());
        };
        let forwarded = self.agent_forwarded.subscribe();
        let chan =
            Arc::new(Chan::new(self.b.clone(), authed.clone(), self.session_id.clone(), channel.id(), forwarded));
        self.channels.insert(channel.id(), chan.clone());
        let handle = session.handle();
        reply.accept().await;
        match authed.target.clone() {
            None => tokio::spawn(menu::run(self.b.clone(), chan, channel, handle)),
            Some(name) => tokio::spawn(direct(self.b.clone(), self.target.clone(), name, chan, channel, handle)),
        };
        Ok(())
    }

    /// `ssh -A`: noted for targets that log in with the user's own agent; nothing else uses it.
    async fn agent_request(&mut self, channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        let known = self.channels.contains_key(&channel);
        if known {
            self.agent_forwarded.send_replace(true);
        }
        Ok(known)
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            let pty = PtySize { term: term.to_owned(), cols: col_width, rows: row_height, pix_width, pix_height };
            c.pty(pty, modes.to_vec()).await;
        }
        success(session, channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.env(name, value).await;
        }
        success(session, channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.start(Kind::Shell).await;
        }
        success(session, channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.start(Kind::Exec(String::from_utf8_lossy(data).into_owned())).await;
        }
        success(session, channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.start(Kind::Subsystem(name.to_owned())).await;
        }
        success(session, channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.resize(col_width, row_height, pix_width, pix_height).await;
        }
        Ok(())
    }

    async fn signal(&mut self, channel: ChannelId, signal: Sig, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(c) = self.chan(channel) {
            c.signal(signal).await;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_offers_become_one_reason_per_login_name() {
        let mut o = Offers::default();
        o.key("t1", "alice", "SHA256:a".into());
        o.key("t1", "alice", "SHA256:b".into());
        o.key("t1", "alice", "SHA256:a".into());
        o.name("t1", "mallory", "unknown_user: there is no user `mallory`".into());
        o.name("t1", "mallory", "unknown_user: there is no user `mallory`".into());
        o.key("t1", "bob", "SHA256:c".into());
        let reasons = o.reasons();
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons[0].2, "unknown_key: SHA256:a, SHA256:b are not registered keys of `alice`");
        assert_eq!(reasons[1].2, "unknown_user: there is no user `mallory`");
        assert_eq!(reasons[2].2, "unknown_key: SHA256:c is not a registered key of `bob`");
        let mut o = Offers::default();
        for i in 0..100 {
            o.key("t1", &format!("u{i}"), format!("SHA256:{i}"));
        }
        assert_eq!(o.reasons().len(), MAX_OFFERS, "a connection's refusals are bounded");
    }
}
