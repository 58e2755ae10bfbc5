//! A private Redis server for tests that stop and restart Redis (the shared one must stay up for
//! the other tests).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child process on a free loopback port.
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        let mut redis = Self { port: free_port(), child: None };
        redis.restart().await;
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many times `command` (lower case, as `INFO commandstats` names it: `evalsha`) ran
    /// since the server started.
    pub async fn command_calls(&self, command: &str) -> u64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect to redis");
        stream.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").await.expect("send INFO");
        // A bulk string: `$<length>\r\n<text>\r\n`.
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        let text = loop {
            let n = stream.read(&mut chunk).await.expect("read INFO");
            assert!(n > 0, "redis closed the connection before answering INFO");
            reply.extend_from_slice(&chunk[..n]);
            let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else { continue };
            let head = std::str::from_utf8(&reply[..end]).expect("bulk header");
            let length: usize = head.strip_prefix('$').and_then(|l| l.parse().ok()).expect("a bulk reply");
            if reply.len() >= end + 2 + length {
                break String::from_utf8_lossy(&reply[end + 2..end + 2 + length]).into_owned();
            }
        };
        let prefix = format!("cmdstat_{command}:calls=");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().expect("a count of calls"))
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the CI script installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
