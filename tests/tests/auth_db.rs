//! Authentication and ACL from the user's own databases and directory (issue 29), each a
//! real server started here on free loopback ports: PostgreSQL (initdb), MariaDB
//! (mariadb-install-db), `redis-server` and `slapd` (LDAPS with a test CA). For each: a right
//! password admitted, a wrong one refused, an unknown user passed to the next source (the
//! users file), injection attempts refused, the superuser flag and the database's ACL rows
//! applied; then the backend stopped (or paused): new logins get the configured outcome
//! within the timeout, a connected client is unaffected, the failure is counted in
//! `/metrics`, and logins work again when it returns.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roost_e2e::TestBroker;
use roost_e2e::mariadb::Mariadb;
use roost_e2e::postgres::Postgres;
use roost_e2e::redis::Redis;
use roost_e2e::slapd::{BASE, Slapd};

use crate::auth_db_support::*;

/// `chain` then the users file; `[acl] sources`; `no_match = "deny"` and one file rule (so
/// that a connected client has something it may publish whatever its database says).
fn base_config(users: &std::path::Path, chain: &str, acl_sources: &str) -> String {
    format!(
        "[auth]\nallow_anonymous = false\nchain = [{chain}, \"password_file\"]\npassword_file = {:?}\n\
         slow_after_failures = 0\n[acl]\nno_match = \"deny\"\nsources = [{acl_sources}]\n[[acl.rule]]\n\
         permission = \"allow\"\nuser = \"alice\"\naction = \"publish\"\ntopics = [\"alice/still-here\"]\n",
        users.display()
    )
}

const SQL_ROWS: &str = "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES \
    ('alice', 'deny', 'publish', 'alice/private'), ('alice', 'allow', 'publish', 'alice/#'), \
    ('alice', 'allow', 'subscribe', 'news/#'), ('root', 'deny', 'all', '#')";

#[tokio::test]
async fn auth_db_postgresql_auth_acl_and_outage() {
    let mut pg = Postgres::start().await;
    let c = pg.client().await.unwrap();
    let sql = format!(
        "CREATE TABLE mqtt_user (username text PRIMARY KEY, password_hash text, salt text, is_superuser boolean);\
         INSERT INTO mqtt_user VALUES ('alice', '{}', 's1', false), ('root', '{}', 's2', true);\
         CREATE TABLE mqtt_acl (id serial, username text, permission text, action text, topic text);{SQL_ROWS};",
        sha256_suffix("alice-pw", "s1"),
        sha256_suffix("root-pw", "s2")
    );
    c.batch_execute(&sql).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[acl.postgresql]\nquery = \"SELECT permission, action, topic FROM mqtt_acl \
         WHERE username = ${{username}} ORDER BY id\"\n[auth.postgresql]\nserver = \"127.0.0.1:{}\"\n\
         database = \"postgres\"\nusername = \"roost\"\ntimeout = \"1s\"\ncache_ttl = \"1m\"\n\
         password_hash_algorithm = {{ name = \"sha256\", salt_position = \"suffix\" }}\n",
        base_config(&users_file(dir.path()), "\"postgresql\"", "\"postgresql\""),
        pg.port
    );
    let broker = TestBroker::start_with(&config).await;
    admits_refuses_and_applies_acl(&broker, "postgresql", true).await;
    assert!(counted(&broker, "postgresql_acl", "loaded").await >= 1.0);

    let (mut alice, code) = connect5(broker.addr(), "alice-kept", "alice", "alice-pw").await;
    assert_eq!(code, 0);
    pg.down().await;
    // on_error = "deny" (the default): refused as not authorized, within the 1 s timeout.
    down_outcome(&broker, "postgresql", &mut alice, "alice-down", 0x87, Duration::from_secs(4)).await;
    // The cache still answers for credentials it has seen (cache_ttl).
    assert_eq!(code5(broker.addr(), "alice-1", "alice", "alice-pw").await, 0x00, "cached answer");
    pg.up().await;
    works_again(&broker, "postgresql", Duration::from_secs(10)).await;
    broker.stop().await;
}

#[tokio::test]
async fn auth_db_mariadb_auth_acl_and_outage() {
    let mut db = Mariadb::start().await;
    let alice = bcrypt::hash("alice-pw", 4).unwrap();
    let root = bcrypt::hash("root-pw", 4).unwrap();
    db.sql(&format!(
        "CREATE DATABASE mqtt; CREATE USER 'roost'@'%' IDENTIFIED BY 'roost-pw'; \
         GRANT SELECT ON mqtt.* TO 'roost'@'%'; USE mqtt; \
         CREATE TABLE mqtt_user (username VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(100), salt VARCHAR(40), \
         is_superuser TINYINT(1)); \
         INSERT INTO mqtt_user VALUES ('alice', '{alice}', NULL, 0), ('root', '{root}', NULL, 1); \
         CREATE TABLE mqtt_acl (id INT AUTO_INCREMENT PRIMARY KEY, username VARCHAR(64), permission VARCHAR(8), \
         action VARCHAR(16), topic VARCHAR(128)); {SQL_ROWS};"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    // on_error = "ignore": with MariaDB down the users file decides (it does not know alice).
    let config = format!(
        "{}[acl.mysql]\nquery = \"SELECT permission, action, topic FROM mqtt_acl \
         WHERE username = ${{username}} ORDER BY id\"\n[auth.mysql]\nserver = \"127.0.0.1:{}\"\n\
         database = \"mqtt\"\nusername = \"roost\"\npassword = \"roost-pw\"\ntimeout = \"1s\"\ncache_ttl = \"0s\"\n\
         on_error = \"ignore\"\npassword_hash_algorithm = {{ name = \"bcrypt\" }}\n",
        base_config(&users_file(dir.path()), "\"mysql\"", "\"mysql\""),
        db.port
    );
    let broker = TestBroker::start_with(&config).await;
    admits_refuses_and_applies_acl(&broker, "mysql", true).await;

    let (mut alice, code) = connect5(broker.addr(), "alice-kept", "alice", "alice-pw").await;
    assert_eq!(code, 0);
    db.down().await;
    down_outcome(&broker, "mysql", &mut alice, "alice-down", 0x86, Duration::from_secs(4)).await;
    // dave is in the next source: with on_error = "ignore" he still gets in.
    assert_eq!(code5(broker.addr(), "dave-down", "dave", "dave-pw").await, 0x00);
    db.up().await;
    works_again(&broker, "mysql", Duration::from_secs(15)).await;
    broker.stop().await;
}

#[tokio::test]
async fn auth_db_redis_auth_acl_pause_and_outage() {
    let mut redis = Redis::start().await;
    let (a, b) = (pbkdf2_sha256("alice-pw", "s1"), pbkdf2_sha256("root-pw", "s2"));
    let fill = async |r: &Redis| {
        r.cmd(&["HSET", "mqtt_user:alice", "password_hash", &a, "salt", "s1", "is_superuser", "0"]).await;
        r.cmd(&["HSET", "mqtt_user:root", "password_hash", &b, "salt", "s2", "is_superuser", "1"]).await;
        r.cmd(&["HSET", "mqtt_acl:alice", "alice/#", "publish", "news/#", "subscribe"]).await;
    };
    fill(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[auth.redis]\nserver = \"127.0.0.1:{}\"\ntimeout = \"1s\"\ncache_ttl = \"0s\"\n\
         password_hash_algorithm = {{ name = \"pbkdf2\", mac_fun = \"sha256\", iterations = 1000, dk_length = 32 }}\n",
        base_config(&users_file(dir.path()), "\"redis\"", "\"redis\""),
        redis.port
    );
    let broker = TestBroker::start_with(&config).await;
    admits_refuses_and_applies_acl(&broker, "redis", false).await;
    // Redis ACL hashes are allows (EMQX): what they list passes, nothing else does.
    let (mut alice, code) = connect5(broker.addr(), "alice-kept", "alice", "alice-pw").await;
    assert_eq!(code, 0);
    let granted = rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
    assert_eq!(suback(&mut alice, 1, "news/x").await, granted);
    assert!(allowed(puback(&mut alice, 2, "alice/x").await));
    let denied = rumqttc::v5::mqttbytes::v5::PubAckReason::NotAuthorized;
    assert_eq!(puback(&mut alice, 3, "news/x").await, denied);

    // Paused: it accepts and never answers, so only the timeout ends the login. While one
    // login waits, the connected client is served at once.
    redis.pause(true).await;
    let addr = broker.addr();
    let waiting = tokio::spawn(async move { code5(addr, "alice-waiting", "alice", "alice-pw").await });
    let t = std::time::Instant::now();
    assert!(allowed(puback(&mut alice, 4, "alice/still-here").await));
    assert!(t.elapsed() < Duration::from_millis(800), "a waiting login held others: {:?}", t.elapsed());
    assert_eq!(waiting.await.unwrap(), 0x87, "redis paused: denied after the timeout");
    down_outcome(&broker, "redis", &mut alice, "alice-paused", 0x87, Duration::from_secs(4)).await;
    assert!(counted(&broker, "redis", "timeout").await >= 1.0);
    redis.pause(false).await;
    redis.down().await;
    down_outcome(&broker, "redis", &mut alice, "alice-down", 0x87, Duration::from_secs(4)).await;
    redis.up().await;
    fill(&redis).await;
    works_again(&broker, "redis", Duration::from_secs(10)).await;
    broker.stop().await;
}

#[tokio::test]
async fn auth_db_ldap_search_then_bind_over_tls_and_bind_over_starttls() {
    let users = format!(
        "dn: uid=alice,ou=users,{BASE}\nobjectClass: inetOrgPerson\nuid: alice\ncn: alice\nsn: alice\n\
         userPassword: alice-pw\n\n\
         dn: uid=root,ou=users,{BASE}\nobjectClass: inetOrgPerson\nuid: root\ncn: root\nsn: root\n\
         userPassword: root-pw\nemployeeType: TRUE\n\n"
    );
    let mut slapd = Slapd::start(&users).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[auth.ldap]\nserver = \"ldaps://127.0.0.1:{}\"\nca_file = {:?}\nbind_dn = \"cn=reader,{BASE}\"\n\
         bind_password = \"reader\"\nbase_dn = \"ou=users,{BASE}\"\n\
         filter = \"(&(objectClass=inetOrgPerson)(uid=${{username}}))\"\nis_superuser_attribute = \"employeeType\"\n\
         timeout = \"2s\"\ncache_ttl = \"0s\"\n",
        base_config(&users_file(dir.path()), "\"ldap\"", ""),
        slapd.tls_port,
        slapd.ca_file.display()
    );
    let broker = TestBroker::start_with(&config).await;
    admits_refuses_and_applies_acl(&broker, "ldap", false).await;

    let (mut alice, code) = connect5(broker.addr(), "alice-kept", "alice", "alice-pw").await;
    assert_eq!(code, 0);
    slapd.down().await;
    down_outcome(&broker, "ldap", &mut alice, "alice-down", 0x87, Duration::from_secs(5)).await;
    slapd.up().await;
    works_again(&broker, "ldap", Duration::from_secs(10)).await;
    broker.stop().await;

    // Bind as the user, no search, over ldap:// upgraded with StartTLS.
    let config = format!(
        "{}[auth.ldap]\nserver = \"ldap://127.0.0.1:{}\"\nstarttls = true\nca_file = {:?}\n\
         bind_dn_template = \"uid=${{username}},ou=users,{BASE}\"\ntimeout = \"2s\"\ncache_ttl = \"0s\"\n",
        base_config(&users_file(dir.path()), "\"ldap\"", ""),
        slapd.port,
        slapd.ca_file.display()
    );
    let broker = TestBroker::start_with(&config).await;
    let addr = broker.addr();
    assert_eq!(code5(addr, "b-1", "alice", "alice-pw").await, 0x00, "bound as the user over StartTLS");
    assert_eq!(code5(addr, "b-2", "alice", "wrong").await, 0x86);
    assert_eq!(code5(addr, "b-4", "alice", "").await, 0x86, "no anonymous bind");
    broker.stop().await;
}
