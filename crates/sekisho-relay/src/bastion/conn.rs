//! One SSH connection to the bastion: authentication, then its channels.
//!
//! Channel requests (PTY, shell, exec, subsystem, window change, signals) arrive here in order;
//! each is answered at once and passed on to the target channel, so a request and the data
//! after it reach the target in the order the user sent them. Requests the bastion does not carry
//! (X11, agent forwarding, port forwarding) are refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, Response, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty, Sig};
use sekisho_audit::Decision as AuditDecision;
use sekisho_store::now_ms;

use super::auth::{Authed, Candidate, find_user, login_event, totp_step};
use super::channel::{Chan, Kind, PtySize};
use super::{Bastion, channel, menu, target};
use crate::api::LOCKOUT;

const TOTP_PROMPT: &str = "TOTP code / 確認コード: ";

pub(crate) struct Conn {
    b: Arc<Bastion>,
    peer: SocketAddr,
    session_id: String,
    /// The user who passed the first factor, and how.
    first: Option<(Candidate, &'static str)>,
    authed: Option<Arc<Authed>>,
    /// Direct mode: the connected target, shared by the connection's channels.
    target: Option<Result<Arc<target::Connected>, String>>,
    channels: HashMap<ChannelId, Arc<Chan>>,
}

impl Conn {
    pub(crate) fn new(b: Arc<Bastion>, peer: SocketAddr) -> Self {
        Conn {
            b,
            peer,
            session_id: crate::secrets::new_id("ss"),
            first: None,
            authed: None,
            target: None,
            channels: HashMap::new(),
        }
    }

    fn ip(&self) -> std::net::IpAddr {
        crate::api::canonical(self.peer.ip())
    }

    /// Records a refused login and counts it against the address (and the user, if known).
    async fn refuse(&self, tenant: &str, user: &str, method: &str, reason: &str, user_id: Option<&str>) -> Auth {
        let state = &self.b.state;
        state.limiter.failed(self.ip());
        if let Some(id) = user_id {
            let _ = state.store.login_failed(id, LOCKOUT.0, now_ms() + LOCKOUT.1).await;
        }
        let event = login_event(state, tenant, user, self.ip(), method, AuditDecision::Deny, reason);
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record a refused ssh login");
        }
        Auth::reject()
    }

    /// After the first factor: on to the TOTP code, which every bastion user must have.
    async fn second_factor(&mut self, c: Candidate, method: &'static str) -> Auth {
        if c.user.totp_enabled == 0 {
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

    /// The direct-mode target, connected (and decided) once per connection.
    async fn direct_target(&mut self, authed: &Arc<Authed>, name: &str) -> Result<Arc<target::Connected>, String> {
        if let Some(t) = &self.target {
            return t.clone();
        }
        let t = target::open(&self.b, authed, name).await.map(Arc::new);
        self.target = Some(t.clone());
        t
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
        let Ok(c) = find_user(&self.b.state, user).await else {
            return Ok(Auth::reject());
        };
        let known = self.b.state.store.find_ssh_key(&c.tenant_id, &fp).await.ok().flatten();
        Ok(if known.is_some_and(|k| k.user_id == c.user.id) { Auth::Accept } else { Auth::reject() })
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
        let known = self.b.state.store.find_ssh_key(&c.tenant_id, &fp).await.ok().flatten();
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
        let ok = tokio::task::spawn_blocking(move || crate::secrets::verify_password(&password, &phc))
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
        let secret = c.user.totp_secret.as_deref().and_then(|s| state.master.open(s)).unwrap_or_default();
        let unix = (now_ms() / 1000) as u64;
        let Some(step) = totp_step(secret, &code, unix) else {
            let id = c.user.id.clone();
            return Ok(self.refuse(&c.tenant_id, &c.user.name, &method, "bad_totp", Some(&id)).await);
        };
        if !state.store.use_totp_step(&c.user.id, step).await.unwrap_or(false) {
            let why = "totp_replayed: this code was already used; wait for the next one";
            let id = c.user.id.clone();
            return Ok(self.refuse(&c.tenant_id, &c.user.name, &method, why, Some(&id)).await);
        }
        let _ = state.store.login_succeeded(&c.user.id).await;
        let groups = state.store.groups_of(&c.user.id).await.unwrap_or_default().into_iter().map(|g| g.name).collect();
        let ip = self.ip();
        let event =
            login_event(&state, &c.tenant_id, &c.user.name, ip, &method, AuditDecision::Allow, "login succeeded")
                .detail(format!("session {}", self.session_id));
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record an ssh login");
            return Ok(Auth::reject());
        }
        self.authed = Some(Arc::new(Authed {
            tenant: c.tenant_id.clone(),
            user: c.user.name.clone(),
            groups,
            method,
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
        let chan = Arc::new(Chan::new(self.b.clone(), authed.clone(), self.session_id.clone(), channel.id()));
        self.channels.insert(channel.id(), chan.clone());
        let handle = session.handle();
        match authed.target.clone() {
            None => {
                reply.accept().await;
                tokio::spawn(menu::run(self.b.clone(), chan, channel, handle));
            }
            Some(name) => match self.direct_target(&authed, &name).await {
                Ok(t) if t.is_telnet() => {
                    reply.accept().await;
                    tokio::spawn(super::telnet::run(chan, t, channel));
                }
                Ok(t) => match t.open_channel().await {
                    Ok(tc) => {
                        reply.accept().await;
                        chan.attach(t, tc, handle, channel);
                    }
                    Err(e) => {
                        reply.accept().await;
                        tokio::spawn(channel::refuse(channel, format!("target_unreachable: {e}")));
                    }
                },
                Err(why) => {
                    reply.accept().await;
                    tokio::spawn(channel::refuse(channel, why));
                }
            },
        }
        Ok(())
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
