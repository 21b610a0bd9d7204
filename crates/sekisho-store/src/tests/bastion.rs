//! The bastion's rows: SSH keys, targets, TOTP steps, recordings.

use super::*;

#[tokio::test]
async fn bastion_keys_targets_totp_steps_and_recording_search() {
    for (_d, s) in stores().await {
        s.insert_tenant(&tenant("acme", 5)).await.unwrap();
        let user = user("u1", "acme", "alice");
        s.insert_user(&user).await.unwrap();
        let key = SshKey {
            id: "k1".into(),
            tenant_id: "acme".into(),
            user_id: "u1".into(),
            name: "laptop".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            fingerprint: "SHA256:abc".into(),
            created_at: 1,
        };
        s.insert_ssh_key(&key).await.unwrap();
        assert!(matches!(
            s.insert_ssh_key(&SshKey { id: "k2".into(), ..key.clone() }).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(s.find_ssh_key(&TenantId::from("acme"), "SHA256:abc").await.unwrap().unwrap().user_id, "u1");
        assert!(
            s.find_ssh_key(&TenantId::from("default"), "SHA256:abc").await.unwrap().is_none(),
            "keys are per tenant"
        );
        assert_eq!(s.list_ssh_keys(&TenantId::from("acme"), Some("u1")).await.unwrap().len(), 1);
        assert_eq!(s.list_ssh_keys(&TenantId::from("acme"), Some("u9")).await.unwrap().len(), 0);

        // A TOTP step is spent once; older steps never again.
        assert!(s.use_totp_step(&UserId::from("u1"), 100).await.unwrap());
        assert!(!s.use_totp_step(&UserId::from("u1"), 100).await.unwrap(), "replayed step");
        assert!(!s.use_totp_step(&UserId::from("u1"), 99).await.unwrap(), "older step");
        assert!(s.use_totp_step(&UserId::from("u1"), 101).await.unwrap());

        // Deleting the user takes the key with it.
        s.delete_user(&TenantId::from("acme"), "u1").await.unwrap();
        assert!(s.find_ssh_key(&TenantId::from("acme"), "SHA256:abc").await.unwrap().is_none());

        let web01 = Service {
            agent_id: None,
            target: "ssh://10.0.0.5:22".into(),
            protocol: Protocol::Ssh,
            ..service("s1", "acme", "web01", "")
        };
        s.insert_service(&web01).await.unwrap();
        let target = SshTarget {
            service_id: "s1".into(),
            tenant_id: "acme".into(),
            login: "root".into(),
            secret_kind: "password".into(),
            secret: "sealed".into(),
            host_key: String::new(),
            updated_at: 1,
        };
        s.put_ssh_target(&target).await.unwrap();
        assert!(s.pin_host_key(&ServiceId::from("s1"), "ssh-ed25519 HOST").await.unwrap());
        assert!(!s.pin_host_key(&ServiceId::from("s1"), "ssh-ed25519 OTHER").await.unwrap(), "first key stays pinned");
        assert_eq!(s.get_ssh_target(&ServiceId::from("s1")).await.unwrap().unwrap().host_key, "ssh-ed25519 HOST");

        let rec = |id: &str, at: i64, commands: &str| Recording {
            id: id.into(),
            tenant_id: "acme".into(),
            session_id: "sess".into(),
            user_name: "alice".into(),
            target: "web01".into(),
            protocol: "ssh".into(),
            kind: "shell".into(),
            command: String::new(),
            source_ip: "10.1.1.1".into(),
            started_at: at,
            ended_at: None,
            bytes: 0,
            sha256: String::new(),
            commands: "[]".into(),
            files: commands.into(),
        };
        s.insert_recording(&rec("r1", 10, "[]")).await.unwrap();
        s.insert_recording(&Recording { kind: "exec".into(), command: "uptime 100%".into(), ..rec("r2", 20, "[]") })
            .await
            .unwrap();
        let mut done = rec("r1", 10, "[]");
        done.ended_at = Some(30);
        done.sha256 = "ff".into();
        done.commands = r#"[{"t":1.5,"cmd":"sudo systemctl restart nginx"}]"#.into();
        s.finish_recording(&done).await.unwrap();
        let find = |f: RecordingFilter| {
            let s = s.clone();
            async move {
                s.search_recordings(&TenantId::from("acme"), &f)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(find(RecordingFilter::default()).await, ["r2", "r1"], "newest first");
        let by_cmd = RecordingFilter { command: Some("systemctl restart".into()), ..Default::default() };
        assert_eq!(find(by_cmd).await, ["r1"]);
        assert_eq!(find(RecordingFilter { command: Some("100%".into()), ..Default::default() }).await, ["r2"]);
        assert_eq!(find(RecordingFilter { command: Some("0%".into()), ..Default::default() }).await, ["r2"]);
        assert!(find(RecordingFilter { command: Some("1_0".into()), ..Default::default() }).await.is_empty());
        assert_eq!(find(RecordingFilter { protocol: Some("exec".into()), ..Default::default() }).await, ["r2"]);
        let window =
            RecordingFilter { since: Some(15), until: Some(25), user: Some("alice".into()), ..Default::default() };
        assert_eq!(find(window).await, ["r2"]);
        assert!(s.search_recordings(&TenantId::from("default"), &RecordingFilter::default()).await.unwrap().is_empty());
        assert_eq!(s.get_recording(&TenantId::from("acme"), "r1").await.unwrap().unwrap().sha256, "ff");
    }
}
