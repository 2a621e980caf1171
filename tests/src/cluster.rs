//! The scaled-out mode on loopback for tests: a real redis-server and the four service
//! binaries as child processes sharing one SQLite file, each on a port it chose.

use std::path::PathBuf;
use std::time::Duration;

use chat_test_redis::RedisServer;
use redis::AsyncCommands;

use crate::process::ServiceProcess;
use crate::{Http, WsClient, TEST_SECRET};

/// Partitions in test clusters: few, so each instance owns several.
pub const PARTITIONS: u32 = 8;
/// The chat services' default lease TTL: the failover tests measure the default settings.
pub const LEASE_TTL: Duration = Duration::from_millis(1200);
/// Groups above this many members use a group topic in test clusters.
pub const LARGE_GROUP_MEMBERS: usize = 3;
/// The secret test gateways and chat services authenticate internal calls with.
pub const INTERNAL_SECRET: &str = "test-internal-secret-0123456789";
/// Presence TTL of test gateways.
pub const PRESENCE_TTL: Duration = Duration::from_millis(1000);

pub struct Cluster {
    pub redis: RedisServer,
    pub gateways: Vec<Option<ServiceProcess>>,
    pub chat_services: Vec<Option<ServiceProcess>>,
    pub presence: ServiceProcess,
    pub push: ServiceProcess,
    /// Environment every process gets: Redis, the shared SQLite file, the JWT secret.
    env: Vec<(&'static str, String)>,
    /// Flags every gateway gets besides the defaults.
    gateway_args: Vec<String>,
    _data: tempfile::TempDir,
}

async fn spawn(env: &[(&'static str, String)], name: &str, args: &[&str]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServiceProcess::spawn(&binary(name), name, args, &env).await
}

/// A workspace binary, built next to the test executable (`cargo test --workspace` builds
/// every binary before it runs tests).
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

impl Cluster {
    /// Starts Redis, `chat_services` chat-service instances, presence, push and `gateways`
    /// gateways, and waits until every partition is served.
    pub async fn start(gateways: usize, chat_services: usize) -> Self {
        Self::start_with(gateways, chat_services, &[]).await
    }

    /// Like `start`, with extra flags for every gateway.
    pub async fn start_with(gateways: usize, chat_services: usize, gateway_args: &[&str]) -> Self {
        Self::start_with_env(gateways, chat_services, gateway_args, &[]).await
    }

    /// Like `start_with`, with extra settings (env vars) for every process.
    pub async fn start_with_env(
        gateways: usize,
        chat_services: usize,
        gateway_args: &[&str],
        settings: &[(&'static str, &str)],
    ) -> Self {
        Self::start_on(
            RedisServer::start().await,
            gateways,
            chat_services,
            gateway_args,
            settings,
        )
        .await
    }

    /// Like `start`, with Redis accepting TLS only (`rediss://`); every process trusts its
    /// test CA through `SSL_CERT_FILE`, as an operator would trust a private CA.
    pub async fn start_over_tls(gateways: usize, chat_services: usize) -> Self {
        let redis = RedisServer::start_tls().await;
        let ca = redis.ca_file().to_str().expect("utf-8 path").to_owned();
        Self::start_on(
            redis,
            gateways,
            chat_services,
            &[],
            &[("SSL_CERT_FILE", &ca)],
        )
        .await
    }

    async fn start_on(
        redis: RedisServer,
        gateways: usize,
        chat_services: usize,
        gateway_args: &[&str],
        settings: &[(&'static str, &str)],
    ) -> Self {
        crate::init_test_logging();
        let data = tempfile::tempdir().expect("temp dir");
        let sqlite_path = data
            .path()
            .join("chat.db")
            .to_str()
            .expect("utf-8 path")
            .to_owned();
        let env = vec![
            ("CHAT_REDIS_URL", redis.url()),
            ("CHAT_SQLITE_PATH", sqlite_path),
            ("CHAT_JWT_SECRET", TEST_SECRET.to_owned()),
            ("CHAT_INTERNAL_SECRET", INTERNAL_SECRET.to_owned()),
            ("CHAT_LOG_FORMAT", "json".to_owned()),
            // Small, so the storm's group fans out on its group topic.
            ("CHAT_LARGE_GROUP_MEMBERS", LARGE_GROUP_MEMBERS.to_string()),
        ];
        let env: Vec<(&str, String)> = env
            .into_iter()
            .chain(settings.iter().map(|(k, v)| (*k, v.to_string())))
            .collect();
        let presence = spawn(
            &env,
            "chat-presence",
            &["--listen", "127.0.0.1:0", "--sweep-interval", "200ms"],
        )
        .await;
        let push = spawn(
            &env,
            "chat-push",
            &["--listen", "127.0.0.1:0", "--reclaim-after", "2s"],
        )
        .await;
        let mut cluster = Cluster {
            redis,
            gateways: Vec::new(),
            chat_services: Vec::new(),
            presence,
            push,
            env,
            gateway_args: gateway_args.iter().map(|a| a.to_string()).collect(),
            _data: data,
        };
        for i in 0..chat_services {
            let process = cluster.spawn_chat_service(i).await;
            cluster.chat_services.push(Some(process));
        }
        for i in 0..gateways {
            let process = cluster.spawn_gateway(i).await;
            cluster.gateways.push(Some(process));
        }
        cluster.wait_until_served().await;
        cluster
    }

    pub async fn spawn_chat_service(&self, i: usize) -> ServiceProcess {
        let id = format!("chat-{i}");
        let partitions = PARTITIONS.to_string();
        let ttl = format!("{}ms", LEASE_TTL.as_millis());
        spawn(
            &self.env,
            "chat-service",
            &[
                "--listen",
                "127.0.0.1:0",
                "--instance-id",
                &id,
                "--partitions",
                &partitions,
                "--lease-ttl",
                &ttl,
            ],
        )
        .await
    }

    pub async fn spawn_gateway(&self, i: usize) -> ServiceProcess {
        let id = format!("gw-{i}");
        let ttl = format!("{}ms", PRESENCE_TTL.as_millis());
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--server-id",
            &id,
            "--presence-ttl",
            &ttl,
            "--send-rate",
            "100000",
            "--send-burst",
            "100000",
        ];
        args.extend(self.gateway_args.iter().map(String::as_str));
        spawn(&self.env, "chat-gateway", &args).await
    }

    /// Waits until every partition has an owner that has finished its takeover wait.
    pub async fn wait_until_served(&self) {
        let client = self.redis.client();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        for _ in 0..300 {
            let mut owned = 0;
            for p in 0..PARTITIONS {
                let lease: Option<String> =
                    conn.get(format!("chat:lease:{p}")).await.unwrap_or(None);
                owned += lease.is_some() as u32;
            }
            if owned == PARTITIONS {
                // A new owner serves one lease TTL after acquiring.
                tokio::time::sleep(LEASE_TTL + LEASE_TTL / 2).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("partitions never all had owners");
    }

    pub fn gateway_addr(&self, i: usize) -> std::net::SocketAddr {
        self.gateways[i].as_ref().expect("gateway running").addr
    }

    /// Creates (or finds) the direct chat of `user` and `other` through `gateway`.
    pub async fn direct_chat(&self, gateway: usize, user: &str, other: &str) -> String {
        self.http(gateway)
            .create_chat(
                &crate::token(user, None),
                serde_json::json!({"kind": "direct", "members": [other]}),
            )
            .await
    }

    pub fn http(&self, gateway: usize) -> Http {
        Http::new(self.gateway_addr(gateway))
    }

    pub async fn connect(&self, gateway: usize, user: &str, device: &str) -> WsClient {
        WsClient::connect(self.gateway_addr(gateway), user, Some(device))
            .await
            .expect("connects")
    }

    /// Which chat-service instance (by index) holds the lease of `chat_id`'s partition.
    pub async fn owner_of(&self, chat_id: &str) -> usize {
        let partition = chat_rpc::placement::partition_of(&chat_id.into(), PARTITIONS);
        let client = self.redis.client();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let lease: String = conn
            .get(format!("chat:lease:{partition}"))
            .await
            .expect("partition has an owner");
        let holder = lease.rsplit_once(':').map_or(lease.as_str(), |(h, _)| h);
        holder
            .strip_prefix("chat-")
            .and_then(|i| i.parse().ok())
            .expect("instance ids are chat-N")
    }

    pub async fn kill_gateway(&mut self, i: usize) {
        self.gateways[i]
            .take()
            .expect("gateway running")
            .kill()
            .await;
    }

    /// Stops instance `i` with SIGTERM in the background; the task answers whether it
    /// exited cleanly.
    pub fn terminate_chat_service(&mut self, i: usize) -> tokio::task::JoinHandle<bool> {
        let process = self.chat_services[i].take().expect("chat service running");
        tokio::spawn(process.terminate())
    }

    pub async fn kill_chat_service(&mut self, i: usize) {
        self.chat_services[i]
            .take()
            .expect("chat service running")
            .kill()
            .await;
    }
}
