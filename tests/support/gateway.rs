//! A real routing service in front of the agent: nginx checks the bearer token, overwrites
//! `X-Forwarded-Sub`, and proxies HTTP and WebSocket — the production topology, on loopback.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, Guard};

/// A running nginx gateway.
pub struct Gateway {
    pub guard: Guard,
    pub port: u16,
    /// With TLS: the CA certificate (PEM) that issued the gateway's certificate.
    pub ca: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

/// Makes a throwaway CA and a server certificate it signs for 127.0.0.1 and localhost.
fn make_certs(dir: &Path) {
    let sh = |script: &str| {
        let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh");
        assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sandbox-test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
        -extfile ext.cnf 2>/dev/null");
}

impl Gateway {
    /// Proxies to `127.0.0.1:upstream`, admitting only `Authorization: Bearer <token>`, as `sub`.
    pub fn start(upstream: u16, token: &str, sub: &str) -> Gateway {
        Gateway::launch(upstream, token, sub, false)
    }

    /// The same over HTTPS, with a certificate from a private CA (`ca`).
    pub fn start_tls(upstream: u16, token: &str, sub: &str) -> Gateway {
        Gateway::launch(upstream, token, sub, true)
    }

    fn launch(upstream: u16, token: &str, sub: &str, tls: bool) -> Gateway {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run the README's test command (it installs nginx-light)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = dir.path().display();
        let listen = if tls {
            make_certs(dir.path());
            format!("listen 127.0.0.1:{port} ssl;\n        ssl_certificate {p}/server.pem;\n        ssl_certificate_key {p}/server.key;")
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        {listen}
        location / {{
            if ($http_authorization != "Bearer {token}") {{ return 401 "unauthorized\n"; }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-Sub "{sub}";
            proxy_set_header Authorization "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let guard = Guard { child, name: "nginx" };
        assert!(
            eventually(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "nginx did not start"
        );
        let ca = tls.then(|| dir.path().join("ca.pem"));
        Gateway { guard, port, ca, _dir: dir }
    }

    /// `http://127.0.0.1:PORT`, or `https://…` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}
