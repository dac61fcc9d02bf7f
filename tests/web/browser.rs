//! `Browser`: headless Debian Chromium driven by chromedriver through
//! fantoccini, for the web page's tests.
//!
//! Each `Browser` starts its own chromedriver on a free loopback port with a
//! fresh profile directory, and stops it (and the Chromium processes under
//! it, by pid) when dropped, so a failing test leaves no browser behind.
//! Every wait is bounded; the browser is told not to reach the network
//! (no background updates, sync or QUIC), so it only talks to 127.0.0.1.
//! It runs in `TIME_ZONE`, far from UTC, so a page that shows a local time
//! where it should show UTC fails its tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser's time zone: UTC+05:30, so a local time differs from UTC
/// in its hours and its minutes.
pub const TIME_ZONE: &str = "Asia/Kolkata";

/// Longest wait for chromedriver to answer, and for any DOM condition.
pub const BROWSER_WAIT: Duration = Duration::from_secs(60);
/// How often a DOM condition is looked at while waited for.
const POLL_EVERY: Duration = Duration::from_millis(50);

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium session (window 1400 x 1300: the
    /// whole page of a default daemon in one screenshot).
    pub async fn start() -> Browser {
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Chromium inherits chromedriver's environment.
            .env("TZ", TIME_ZONE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER} does not start ({e}): apt-get install -y chromium chromium-driver")
            });
        let profile = tempfile::tempdir().expect("a profile directory");
        let stdout = driver.stdout.take().expect("a piped stdout");
        let mut guard = DriverGuard(Some(driver));
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1300",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        // chromedriver says on stdout when it listens: wait for that line
        // (its later output is drained, so it never blocks on a full pipe).
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut ready = Some(ready_tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("started successfully") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let listening = actix_rt::task::spawn_blocking(move || ready_rx.recv_timeout(BROWSER_WAIT))
            .await
            .expect("the wait ends");
        assert!(
            listening.is_ok(),
            "{CHROMEDRIVER} did not say it listens within {BROWSER_WAIT:?}"
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session: {e}"));
        Browser {
            client,
            driver: guard.0.take().expect("the driver"),
            _profile: profile,
        }
    }

    /// Opens `url` and waits for the page's status bar to have a status.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
        self.wait_for("the first status", "#state:not([data-state='unknown'])")
            .await;
    }

    /// Waits for the page to open a prompt (`window.prompt`), types
    /// `answer` into it and accepts it; returns the prompt's text. Nothing
    /// else may be asked of the browser meanwhile: chromedriver dismisses an
    /// open prompt at any other command.
    pub async fn answer_prompt(&self, answer: &str) -> String {
        let tries = BROWSER_WAIT.as_millis() / POLL_EVERY.as_millis();
        for _ in 0..tries {
            if let Ok(text) = self.client.get_alert_text().await {
                self.client
                    .send_alert_text(answer)
                    .await
                    .expect("the prompt takes the text");
                self.client.accept_alert().await.expect("the prompt closes");
                return text;
            }
            actix_rt::time::sleep(POLL_EVERY).await;
        }
        panic!("the page opened no prompt within {BROWSER_WAIT:?}");
    }

    /// Waits until an element matches the CSS `selector`.
    pub async fn wait_for(&self, what: &str, selector: &str) -> fantoccini::elements::Element {
        self.wait_on(what, Locator::Css(selector)).await
    }

    /// Waits until an element matches the XPath `path` (for numeric
    /// conditions CSS cannot say).
    pub async fn wait_for_xpath(&self, what: &str, path: &str) -> fantoccini::elements::Element {
        self.wait_on(what, Locator::XPath(path)).await
    }

    async fn wait_on(&self, what: &str, locator: Locator<'_>) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(BROWSER_WAIT)
            .every(POLL_EVERY)
            .for_element(locator)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let _ = self.screenshot("timed-out").await;
                let bar = self.text("#status").await;
                panic!(
                    "the page never showed {what} within {BROWSER_WAIT:?} ({e}); status bar: {bar}"
                )
            }
        }
    }

    /// The text of the element matching `selector`, or "" if none does.
    pub async fn text(&self, selector: &str) -> String {
        match self.client.find(Locator::Css(selector)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("the script fails: {e}\n{script}"))
    }

    /// Saves a screenshot as `target/web-screenshots/<name>.png`; returns
    /// its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop_tree(&mut self.driver);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_tree(&mut self.driver);
    }
}

/// Stops a chromedriver that is not yet part of a `Browser`.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            stop_tree(child);
        }
    }
}

/// Kills `child` and every process under it (Chromium and its helpers),
/// found by parent pid in /proc, by pid.
fn stop_tree(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let mut pids = vec![child.id()];
    let mut i = 0;
    // Bounded: a process tree of a browser holds a few dozen processes.
    while i < pids.len() && pids.len() < 512 {
        pids.extend(children_of(pids[i]));
        i += 1;
    }
    for pid in pids.iter().skip(1).rev() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name is in parentheses and may hold spaces.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
