//! The key store's behaviour, run unchanged against SQLite and PostgreSQL.

mod common;

use common::db::TestDb;
use keywarden::keystore::{
    KeySpec, KeyState, KeyStore, KeyType, ListFilter, Revocation, StoreError, create_key,
    import_keys, open_store, parse_import, rotate_key,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

async fn open(db: &TestDb) -> Arc<dyn KeyStore> {
    open_store(db.url()).await.expect("store opens")
}

/// Writes each test once and runs it on both backends.
macro_rules! on_both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let $db = TestDb::sqlite(); $body })*
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let $db = TestDb::postgres().await; $body })*
        }
    };
}

on_both_backends! {
    async fn created_key_is_found_by_hash_and_never_stored_whole(db: TestDb) {
        let store = open(&db).await;
        let mut spec = KeySpec::new("ci deploy", "dev@example.com");
        spec.key_type = KeyType::Scoped;
        spec.scopes = vec!["anthropic/*".into()];
        spec.credit_limit = Some(25.0);
        spec.allowed_ips = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        let (key, record) = create_key(&*store, spec, now()).await.unwrap();
        let text = String::from_utf8(key.expose().to_vec()).unwrap();
        assert_eq!(record.label, format!("{}...{}", &text[..12], &text[70..]));
        let found = store
            .find_by_hash(&keywarden::keystore::KeyHash::of(key.expose()))
            .await
            .unwrap()
            .expect("found by hash");
        assert_eq!(found, record);
        assert_eq!(store.get(&record.id).await.unwrap(), Some(record.clone()));
        assert_eq!(found.state(now()), KeyState::Active);
        let raw = db.raw_contents().await;
        assert!(raw.contains(&record.key_hash.to_hex()), "hash is stored");
        assert!(!raw.contains(&text[9..]), "the whole key must never be stored");
    }

    async fn a_key_with_a_stored_hash_is_refused_as_duplicate(db: TestDb) {
        let store = open(&db).await;
        let (_, record) = create_key(&*store, KeySpec::new("a", "a@example.com"), now())
            .await
            .unwrap();
        let mut copy = record.clone();
        copy.id = "key_other".into();
        match store.insert(&copy).await {
            Err(StoreError::Duplicate(id)) => assert_eq!(id, record.id),
            other => panic!("expected Duplicate, got {other:?}"),
        }
    }

    async fn revocation_is_idempotent(db: TestDb) {
        let store = open(&db).await;
        let (_, record) = create_key(&*store, KeySpec::new("a", "a@example.com"), now())
            .await
            .unwrap();
        let first = store.revoke(&record.id, "leaked", now()).await.unwrap();
        assert!(matches!(first, Revocation::Revoked(_)));
        assert_eq!(first.record().state(now()), KeyState::Revoked);
        assert_eq!(first.record().revocation_reason.as_deref(), Some("leaked"));
        let second = store.revoke(&record.id, "again", now()).await.unwrap();
        assert!(matches!(second, Revocation::AlreadyRevoked(_)));
        assert_eq!(second.record().revocation_reason.as_deref(), Some("leaked"));
        assert!(matches!(
            store.revoke("key_missing", "x", now()).await,
            Err(StoreError::NotFound(_))
        ));
    }

    async fn a_later_caller_with_an_earlier_clock_does_not_revoke_again(db: TestDb) {
        let store = open(&db).await;
        let t0 = now();
        let (_, record) = create_key(&*store, KeySpec::new("a", "a@example.com"), t0)
            .await
            .unwrap();
        let first = store.revoke(&record.id, "first", t0 + Duration::seconds(1)).await.unwrap();
        assert!(matches!(first, Revocation::Revoked(_)));
        let second = store.revoke(&record.id, "second", t0).await.unwrap();
        assert!(matches!(second, Revocation::AlreadyRevoked(_)));
        assert_eq!(second.record().revocation_reason.as_deref(), Some("first"));
        assert_eq!(second.record().revoked_at, Some(t0 + Duration::seconds(1)));
    }

    async fn concurrent_revocations_on_two_connections_revoke_once(db: TestDb) {
        let a = open(&db).await;
        let b = open(&db).await;
        let (_, record) = create_key(&*a, KeySpec::new("a", "a@example.com"), now())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = record.id.clone();
            tasks.push(tokio::spawn(async move {
                store.revoke(&id, &format!("caller {i}"), now()).await.unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Revocation::Revoked(_)) {
                won += 1;
            }
        }
        assert_eq!(won, 1, "exactly one caller revokes");
        let rows = db
            .query_i64(&format!(
                "SELECT COUNT(*) FROM revocations WHERE key_id = '{}'",
                record.id
            ))
            .await;
        assert_eq!(rows, [1]);
    }

    async fn rotation_issues_a_twin_and_revokes_the_old_key_after_grace(db: TestDb) {
        let store = open(&db).await;
        let mut spec = KeySpec::new("prod", "ops@example.com");
        spec.key_type = KeyType::Team;
        spec.team = Some("research".into());
        spec.allowed_ips = vec!["192.0.2.0/24".parse().unwrap()];
        let t0 = now();
        let (old_key, old) = create_key(&*store, spec, t0).await.unwrap();
        let rotation = rotate_key(&*store, &old.id, Duration::hours(1), t0).await.unwrap();
        assert_ne!(rotation.key, old_key);
        assert_eq!(rotation.old_revoked_at, t0 + Duration::hours(1));
        let new = store.get(&rotation.new.id).await.unwrap().unwrap();
        assert_eq!(
            (&new.name, &new.owner_email, new.key_type, &new.team, &new.allowed_ips),
            (&old.name, &old.owner_email, old.key_type, &old.team, &old.allowed_ips)
        );
        let old_now = store.get(&old.id).await.unwrap().unwrap();
        assert_eq!(old_now.state(t0), KeyState::Active, "still works during grace");
        assert_eq!(old_now.state(t0 + Duration::hours(2)), KeyState::Revoked);
        // A leak during the grace period revokes at once.
        let r = store.revoke(&old.id, "leaked", t0).await.unwrap();
        assert!(matches!(r, Revocation::Revoked(_)));
        assert_eq!(r.record().state(t0), KeyState::Revoked);
        assert!(rotate_key(&*store, &old.id, Duration::ZERO, t0).await.is_err());
    }

    async fn list_filters_by_owner_and_state(db: TestDb) {
        let store = open(&db).await;
        let t0 = now();
        let (_, a) = create_key(&*store, KeySpec::new("a", "a@example.com"), t0).await.unwrap();
        let (_, b) = create_key(&*store, KeySpec::new("b", "b@example.com"), t0).await.unwrap();
        let mut eph = KeySpec::new("c", "a@example.com");
        eph.key_type = KeyType::Ephemeral;
        eph.expires_at = Some(t0 + Duration::minutes(5));
        let (_, c) = create_key(&*store, eph, t0).await.unwrap();
        store.revoke(&b.id, "leaked", t0).await.unwrap();
        let ids = |v: Vec<keywarden::keystore::KeyRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let owner_a = ListFilter { owner_email: Some("a@example.com".into()), state: None };
        let mut got = ids(store.list(&owner_a, t0).await.unwrap());
        got.sort();
        let mut want = vec![a.id.clone(), c.id.clone()];
        want.sort();
        assert_eq!(got, want);
        let later = t0 + Duration::minutes(10);
        let expired = ListFilter { owner_email: None, state: Some(KeyState::Expired) };
        assert_eq!(ids(store.list(&expired, later).await.unwrap()), [c.id.as_str()]);
        let revoked = ListFilter { owner_email: None, state: Some(KeyState::Revoked) };
        assert_eq!(ids(store.list(&revoked, later).await.unwrap()), [b.id.as_str()]);
    }

    async fn a_schema_newer_than_the_binary_is_refused(db: TestDb) {
        drop(open(&db).await);
        db.exec(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', TRUE, X'00', 0)"
                .replace("X'00'", if db.sqlite_path().is_some() { "X'00'" } else { "'\\x00'::bytea" })
                .as_str(),
        )
        .await;
        match open_store(db.url()).await {
            Err(StoreError::SchemaTooNew { found, known }) => {
                assert_eq!(found, 99990101000000);
                assert!(known < found);
            }
            Err(e) => panic!("expected SchemaTooNew, got {e}"),
            Ok(_) => panic!("a newer schema must be refused"),
        }
    }

    async fn imported_inventory_is_stored_by_hash_and_reimport_skips_duplicates(db: TestDb) {
        let store = open(&db).await;
        let k1 = common::gen_key();
        let k2 = common::gen_key();
        let h2 = keywarden::secret::sha256_hex(k2.as_bytes());
        let csv = format!(
            "key,sha256,name,owner_email,type,expires_at\n\
             {k1},,first,a@example.com,standard,\n\
             ,{h2},second,b@example.com,ephemeral,2020-01-01T00:00:00Z\n"
        );
        let rows = parse_import(&csv).unwrap();
        let outcome = import_keys(&*store, rows.clone(), now()).await.unwrap();
        assert_eq!(outcome.imported.len(), 2);
        let again = import_keys(&*store, rows, now()).await.unwrap();
        assert!(again.imported.is_empty());
        assert_eq!(again.duplicates, [2, 3]);
        let second = store
            .find_by_hash(&keywarden::keystore::KeyHash::of(k2.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.state(now()), KeyState::Expired);
        let raw = db.raw_contents().await;
        assert!(!raw.contains(&k1[9..]) && !raw.contains(&k2[9..]));
    }
}

#[tokio::test]
async fn sqlite_store_is_a_private_file_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::sqlite();
    let _store = open(&db).await;
    let path = db.sqlite_path().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "database file mode {mode:o}");
    let header = std::fs::read(&path).unwrap();
    // Bytes 18 and 19 of the header are 2 in WAL mode.
    assert_eq!(&header[18..20], &[2, 2]);
}

#[tokio::test]
async fn unreachable_postgres_is_an_unavailable_store_error() {
    let err = match open_store("postgres://postgres@127.0.0.1:1/none").await {
        Err(e) => e,
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn unknown_database_url_names_the_supported_schemes() {
    let err = match open_store("mysql://u:pw@localhost/db").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("mysql is not supported"),
    };
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "{err}");
}

fn rate_claim(key: &str, limit: u32, want: u32) -> keywarden::keystore::RateClaim {
    keywarden::keystore::RateClaim {
        key_id: key.into(),
        limit,
        want,
        refund: 0,
        spent: 0,
        grant_slot: 0,
    }
}

/// The shared rate counter's statement, called as replicas call it: a key
/// gets its limit once per window, refunds come back, a full window says
/// when it has room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rate_counts_grant_a_limit_once_and_take_refunds_back() {
    let db = TestDb::postgres().await;
    let store = open(&db).await;
    let mut granted = Vec::new();
    for _ in 0..4 {
        let grants = store.claim_rates(&[rate_claim("k1", 10, 4)]).await.unwrap();
        assert_eq!(grants.len(), 1);
        granted.push(grants[0].granted);
    }
    assert_eq!(granted, vec![4, 4, 2, 0]);
    let full = store.claim_rates(&[rate_claim("k1", 10, 4)]).await.unwrap();
    assert_eq!(full[0].used, 10);
    let room = full[0]
        .room_in
        .expect("a full window says when it has room");
    assert!(
        room > std::time::Duration::from_secs(58) && room <= std::time::Duration::from_secs(61),
        "{room:?}"
    );
    // Three of a grant given back unspent, two reported spent: the three
    // can be granted again, the spends still count.
    let back = keywarden::keystore::RateClaim {
        refund: 3,
        spent: 2,
        grant_slot: full[0].slot,
        ..rate_claim("k1", 10, 0)
    };
    assert!(
        store.claim_rates(&[back]).await.unwrap().is_empty(),
        "a report answers nothing"
    );
    let again = store.claim_rates(&[rate_claim("k1", 10, 5)]).await.unwrap();
    assert_eq!((again[0].granted, again[0].used), (3, 10));
    // Other keys are counted apart, in one batch.
    let both = store
        .claim_rates(&[rate_claim("k2", 10, 6), rate_claim("k3", 600, 6)])
        .await
        .unwrap();
    let mut got: Vec<_> = both.iter().map(|g| (g.key_id.clone(), g.granted)).collect();
    got.sort();
    assert_eq!(got, vec![("k2".to_string(), 6), ("k3".to_string(), 6)]);
    // A key twice in one batch is refused, not granted twice.
    let twice = store
        .claim_rates(&[rate_claim("k4", 10, 10), rate_claim("k4", 10, 10)])
        .await;
    assert!(twice.is_err(), "{twice:?}");
    let after = store
        .claim_rates(&[rate_claim("k4", 10, 10)])
        .await
        .unwrap();
    assert_eq!(after[0].granted, 10, "the refused batch counted nothing");
}

/// Replicas claiming one key at once never get more than its limit
/// between them, and the counts stay one row per key however many claims
/// and seconds pass (a row per key and second piled up dead rows faster
/// than a server without autovacuum could ever take them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shared_rate_claims_never_exceed_the_limit_and_keep_one_row_per_key() {
    let db = TestDb::postgres().await;
    let store = open(&db).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while std::time::Instant::now() < deadline {
                let claims = [
                    rate_claim("hot", 300, 3),
                    rate_claim(&format!("cold{t}"), 600, 1),
                ];
                for g in store.claim_rates(&claims).await.unwrap() {
                    if g.key_id == "hot" {
                        got += g.granted;
                    }
                }
            }
            got
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 300, "the replicas together got exactly the limit");
    let rows = db.query_i64("SELECT count(*) FROM rate_windows").await;
    assert_eq!(rows, vec![9], "one row per key");
    // Pruning keeps windows that still count something …
    store.prune_rates().await.unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM rate_windows").await,
        vec![9]
    );
    // … and drops the rest; a dropped key starts from an empty window.
    db.exec("UPDATE rate_windows SET newest = newest - 61 WHERE key_id = 'hot'")
        .await;
    store.prune_rates().await.unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM rate_windows").await,
        vec![8]
    );
    let fresh = store
        .claim_rates(&[rate_claim("hot", 300, 5)])
        .await
        .unwrap();
    assert_eq!((fresh[0].granted, fresh[0].used), (5, 5));
}
