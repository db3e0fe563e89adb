//! The daemon end to end, against a real mosquitto broker on 127.0.0.1
//! (Debian's `mosquitto`, started by each test on a free port):
//!
//! * a replayed camera shows real photos (scikit-image's, in
//!   models/fixtures/vision) one after another; the real image anchor
//!   (models/zoo) and text-defined concepts must produce exactly the expected
//!   events at the right times;
//! * the broker is stopped for 11 s mid-run: every event still arrives, in order;
//! * the daemon is killed with SIGKILL while events wait in its outbox: after a
//!   restart none is lost;
//! * the control plane adds a concept whose events then arrive, survives a
//!   restart, and answers malformed commands with errors.
//!
//! Subscribers dedupe by `(event_id, phase)`, as the README tells real ones to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgebind::slideshow::{Slide, Slideshow};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const S: u64 = 1_000_000_000;

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("..")
}

/// The `edgebind` binary built by `cargo test --workspace` next to this test.
fn edgebind_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("edgebind");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p edgebind` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A test's scratch folder (recording, broker files, daemon state): removed
/// when the test passes, kept for a look when it fails. Declared first in a
/// test, so it outlives the broker and daemons that write into it.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn tmpdir(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("edgebind-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto broker on 127.0.0.1 with persistence (so a subscriber's
/// session survives a broker restart, as in a real deployment).
struct Mosquitto {
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, "allow_anonymous true\n")
    }

    fn start_with(dir: &Path, auth: &str) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{auth}persistence true\npersistence_location {}/\nautosave_interval 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            conf,
            child: None,
        };
        m.restart();
        m
    }

    fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is not installed (apt install mosquitto; scripts/test.sh does)");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it gracefully (SIGTERM: it saves its sessions).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id(), "TERM");
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A subscriber with a persistent session (clean_session = false), QoS 1.
struct Sub {
    msgs: Arc<Mutex<Vec<(String, Value)>>>,
    client: Client,
}

impl Sub {
    fn new(port: u16, id: &str, topics: &[&str]) -> Self {
        Self::login(port, id, topics, None)
    }

    fn login(port: u16, id: &str, topics: &[&str], user: Option<(&str, &str)>) -> Self {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        // Room for the oversized command of the control-plane test.
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 64);
        for t in topics {
            client.subscribe(*t, QoS::AtLeastOnce).unwrap();
        }
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        let c2 = client.clone();
        let topics: Vec<String> = topics.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        m.lock().unwrap().push((p.topic.clone(), v));
                    }
                    Ok(Event::Incoming(Packet::ConnAck(a))) if !a.session_present => {
                        for t in &topics {
                            let _ = c2.try_subscribe(t.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Disconnect)) => break,
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        // Wait for the SUBACK to be sure nothing published from now on is missed.
        std::thread::sleep(Duration::from_millis(300));
        Sub { msgs, client }
    }

    fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .unwrap();
    }

    fn on(&self, suffix: &str) -> Vec<Value> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Event messages, deduplicated by (event_id, phase), in arrival order.
    fn events(&self) -> Vec<Value> {
        let mut seen = BTreeSet::new();
        self.on("/events")
            .into_iter()
            .filter(|v| {
                seen.insert((
                    v["event_id"].as_str().unwrap().to_string(),
                    v["phase"].as_str().unwrap().to_string(),
                ))
            })
            .collect()
    }

    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&Sub) -> bool) {
        let t0 = Instant::now();
        while !ok(self) {
            assert!(
                t0.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; got {:#?}",
                self.msgs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn photo(name: &str, w: u32, h: u32, secs: f64, label: &str) -> Slide {
    Slide {
        file: Some(root().join(format!("models/fixtures/vision/{name}.rgb8"))),
        width: w,
        height: h,
        seconds: secs,
        label: Some(label.into()),
    }
}

fn grey(secs: f64) -> Slide {
    Slide {
        file: None,
        width: 0,
        height: 0,
        seconds: secs,
        label: None,
    }
}

/// grey 3 s, cat 6 s, grey 3 s, coffee 6 s, grey 3 s, rocket 6 s, grey 3 s.
fn photos(dir: &Path) -> PathBuf {
    let show = Slideshow {
        fps: 5.0,
        slides: vec![
            grey(3.0),
            photo("chelsea", 451, 300, 6.0, "cat"),
            grey(3.0),
            photo("coffee", 600, 400, 6.0, "coffee"),
            grey(3.0),
            photo("rocket_portrait", 200, 380, 6.0, "rocket"),
            grey(3.0),
        ],
    };
    let out = dir.join("photos.mcap");
    show.record(&out).unwrap();
    out
}

const CONCEPTS: &str = r#"
[[concept]]
name = "cat"
text = "a cat"
watch = "vision"
enter = 0.35
exit = 0.25

[[concept]]
name = "coffee"
text = "a cup of coffee"
watch = "vision"
enter = 0.30
exit = 0.20
"#;

/// A daemon config over a replayed slideshow. Each window is one still
/// photo, so windows are not averaged (`clip_span_s = 0`, as in
/// configs/photos-demo.toml): the events land on the slides' own times.
fn config(dir: &Path, recording: &Path, pace: &str, device: &str, concepts: &str) -> PathBuf {
    let p = dir.join(format!("{device}-{pace}.toml"));
    let text = format!(
        r#"device_id = "{device}"
[rig]
kind = "replay"
[rig.replay]
path = "{rec}"
pace = "{pace}"
[windows]
vision = {{ length_s = 0.5, hop_s = 0.5 }}
[fusion]
clip_span_s = 0.0
[encoders.vision]
model = "{model}"
[state]
dir = "{state}"
[health]
status_interval_s = 0.5
{concepts}"#,
        rec = recording.display(),
        model = root()
            .join("models/zoo/image_anchor_mobilenetv2.onnx")
            .display(),
        state = dir.join("state").display(),
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// A daemon process, killed if the test fails before it ends.
struct Daemon(Child);

impl Daemon {
    fn id(&self) -> u32 {
        self.0.id()
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(cfg: &Path, broker: &str, extra: &[&str]) -> Daemon {
    Daemon(
        Command::new(edgebind_bin())
            .arg("run")
            .arg("--config")
            .arg(cfg)
            .arg("--broker")
            .arg(broker)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn summary(e: &Value) -> (String, String, u64) {
    let phase = e["phase"].as_str().unwrap().to_string();
    let at = if phase == "end" {
        &e["end"]
    } else {
        &e["start"]
    };
    (
        e["concept"].as_str().unwrap().to_string(),
        phase,
        at["mono_ns"].as_u64().unwrap(),
    )
}

/// Runs the daemon on `cfg` to the end of its recording (`--exit-at-end`),
/// then returns the events `sub` saw once it has at least `n`.
fn run_to_end(cfg: &Path, broker: &Mosquitto, sub: &Sub, n: usize) -> Vec<Value> {
    let mut d = daemon(cfg, &broker.url(), &["--exit-at-end"]);
    let status = d.wait().unwrap();
    assert!(status.success(), "daemon exited with {status}");
    sub.wait_for(&format!("{n} events"), Duration::from_secs(10), |s| {
        s.events().len() >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    sub.events()
}

fn expected_cat_coffee() -> Vec<(String, String, u64)> {
    vec![
        ("cat".into(), "start".into(), 3 * S),
        ("cat".into(), "end".into(), 9 * S),
        ("coffee".into(), "start".into(), 12 * S),
        ("coffee".into(), "end".into(), 18 * S),
    ]
}

/// `[fusion] clip_span_s` reaches the running daemon: with each window
/// averaged with the 1.5 s before it, the same events fire in the same order
/// but later, each within the span of its unaveraged time, and every end
/// later (the photo lingers in the average after the slide changes).
#[test]
fn clip_averaging_delays_events_by_at_most_the_span() {
    let dir = tmpdir("clips");
    let rec = photos(&dir);
    let broker = Mosquitto::start(&dir);
    let sub = Sub::new(broker.port, "sub-clips", &["edgebind/cam2/events"]);
    let cfg = config(&dir, &rec, "fast", "cam2", CONCEPTS);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("clip_span_s = 0.0", "clip_span_s = 2.0");
    std::fs::write(&cfg, text).unwrap();
    let ev: Vec<_> = run_to_end(&cfg, &broker, &sub, 4)
        .iter()
        .map(summary)
        .collect();
    let want = expected_cat_coffee();
    assert_eq!(ev.len(), want.len(), "{ev:?}");
    for (got, want) in ev.iter().zip(&want) {
        assert_eq!((&got.0, &got.1), (&want.0, &want.1), "{ev:?}");
        // Windows end every 0.5 s; the span holds four of them.
        assert!(
            got.2 >= want.2 && got.2 <= want.2 + 2 * S,
            "{got:?} vs unaveraged {want:?}"
        );
        if got.1 == "end" {
            assert!(got.2 > want.2, "{got:?} vs unaveraged {want:?}");
        }
    }
}

#[test]
fn photos_give_exactly_the_expected_events_at_the_right_times() {
    let dir = tmpdir("events");
    let rec = photos(&dir);
    let broker = Mosquitto::start(&dir);
    let sub = Sub::new(
        broker.port,
        "sub-events",
        &["edgebind/cam1/events", "edgebind/cam1/status"],
    );
    // Besides the text concepts, one defined by an example window: the frame
    // shown at 24 s of the recording itself (the rocket).
    let by_example = format!(
        "{CONCEPTS}\n[[concept]]\nname = \"like-24s\"\nexample = {{ recording = \"{}\", modality = \"vision\", at_s = 24.0 }}\nwatch = \"vision\"\nenter = 0.95\nexit = 0.9\n",
        rec.display()
    );
    let cfg = config(&dir, &rec, "fast", "cam1", &by_example);
    let ev = run_to_end(&cfg, &broker, &sub, 6);
    let mut want = expected_cat_coffee();
    want.push(("like-24s".into(), "start".into(), 21 * S));
    want.push(("like-24s".into(), "end".into(), 27 * S));
    assert_eq!(ev.iter().map(summary).collect::<Vec<_>>(), want, "{ev:#?}");
    for e in &ev {
        assert_eq!(e["v"], 1);
        assert_eq!(e["device_id"], "cam1");
        assert_eq!(e["modalities"], json!(["vision"]));
        let start = e["start"]["mono_ns"].as_u64().unwrap();
        // Wall time = the recording's epoch + monotonic time.
        assert_eq!(
            e["start"]["wall_ns"].as_u64().unwrap() - start,
            edgebind_sensors::clock::SIM_WALL_EPOCH_NS
        );
        assert!(e["peak_score"].as_f64().unwrap() >= 0.3, "{e}");
        assert_eq!(e["text"].is_null(), e["concept"] == "like-24s");
    }
    // Start and end of one event share its id; different events do not.
    assert_eq!(ev[0]["event_id"], ev[1]["event_id"]);
    assert_ne!(ev[0]["event_id"], ev[2]["event_id"]);
    assert_eq!(ev[1]["reason"], "below_exit");
    // No duplicates at all in a run without outages.
    assert_eq!(sub.on("/events").len(), 6);
    assert!(
        ev[4]["peak_score"].as_f64().unwrap() > 0.999,
        "the example matches itself: {}",
        ev[4]
    );
    // The retained status ends as offline (graceful exit), after being online.
    let st = sub.on("/status");
    assert!(st.iter().any(|s| s["state"] == "online"));
    assert_eq!(st.last().unwrap()["state"], "offline");
    let online = st.iter().rev().find(|s| s["state"] == "online").unwrap();
    assert_eq!(online["encoders"]["vision"]["backend"], "tract");
}

#[test]
fn broker_outage_of_11_s_loses_nothing_and_keeps_order() {
    let dir = tmpdir("outage");
    let rec = photos(&dir);
    let mut broker = Mosquitto::start(&dir);
    let sub = Sub::new(broker.port, "sub-outage", &["edgebind/cam2/events"]);
    let cfg = config(&dir, &rec, "real_time", "cam2", CONCEPTS);
    let mut d = daemon(
        &cfg,
        &broker.url(),
        &["--exit-at-end", "--drain-timeout", "30"],
    );
    // The cat starts at 3 s of the recording: wait for its start, then cut the broker.
    sub.wait_for("the cat's start", Duration::from_secs(30), |s| {
        !s.events().is_empty()
    });
    broker.stop();
    let down = Instant::now();
    // The cat ends (9 s) and the coffee starts (12 s) while the broker is down.
    std::thread::sleep(Duration::from_secs(11));
    broker.restart();
    eprintln!("broker was down {:.1} s", down.elapsed().as_secs_f64());
    let status = d.wait().unwrap();
    assert!(status.success());
    sub.wait_for("4 events", Duration::from_secs(20), |s| {
        s.events().len() >= 4
    });
    let ev = sub.events();
    assert_eq!(
        ev.iter().map(summary).collect::<Vec<_>>(),
        expected_cat_coffee(),
        "{ev:#?}"
    );
}

#[test]
fn kill_9_with_events_in_the_outbox_loses_none() {
    let dir = tmpdir("crash");
    let rec = photos(&dir);
    let mut broker = Mosquitto::start(&dir);
    let sub = Sub::new(broker.port, "sub-crash", &["edgebind/cam3/events"]);
    let cfg = config(&dir, &rec, "real_time", "cam3", CONCEPTS);
    let mut d = daemon(&cfg, &broker.url(), &[]);
    sub.wait_for("the cat's start", Duration::from_secs(30), |s| {
        !s.events().is_empty()
    });
    broker.stop();
    // The cat's end (9 s) and the coffee's start (12 s) can only go to the outbox.
    let outbox = dir.join("state/outbox");
    let t0 = Instant::now();
    loop {
        let n = outbox_messages(&outbox);
        if n >= 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "events never reached the outbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe_kill(d.id(), "KILL");
    let _ = d.wait();
    broker.restart();
    // Restart: the outbox goes first, then the replay runs again (fast) and
    // re-creates the same event ids, which the subscriber dedupes.
    let cfg2 = config(&dir, &rec, "fast", "cam3", CONCEPTS);
    let mut d2 = daemon(&cfg2, &broker.url(), &["--exit-at-end"]);
    assert!(d2.wait().unwrap().success());
    sub.wait_for("4 events", Duration::from_secs(20), |s| {
        s.events().len() >= 4
    });
    let ev = sub.events();
    assert_eq!(
        ev.iter().map(summary).collect::<Vec<_>>(),
        expected_cat_coffee(),
        "{ev:#?}"
    );
    // The two messages recovered from the outbox came before any re-created one.
    let all = sub.on("/events");
    let first_dup = all
        .iter()
        .position(|v| v["phase"] == "start" && v["concept"] == "cat")
        .map(|i| {
            all[i + 1..]
                .iter()
                .position(|v| v["phase"] == "start" && v["concept"] == "cat")
                .map(|j| i + 1 + j)
        })
        .unwrap();
    if let Some(j) = first_dup {
        let before: Vec<_> = all[..j].iter().map(summary).collect();
        assert!(
            before.contains(&("cat".into(), "end".into(), 9 * S)),
            "{before:?}"
        );
        assert!(
            before.contains(&("coffee".into(), "start".into(), 12 * S)),
            "{before:?}"
        );
    }
}

#[test]
fn control_plane_adds_lists_removes_and_refuses_bad_commands() {
    let dir = tmpdir("control");
    let rec = photos(&dir);
    let broker = Mosquitto::start(&dir);
    let sub = Sub::new(
        broker.port,
        "sub-control",
        &[
            "edgebind/cam4/events",
            "edgebind/cam4/reply/#",
            "edgebind/cam4/status",
        ],
    );
    // Only the cat is configured; the coffee is added over MQTT.
    let cat_only = CONCEPTS.split("[[concept]]").nth(1).unwrap();
    // (The first line lands in [health]: the Prometheus endpoint.)
    let prom = free_port();
    let cfg = config(
        &dir,
        &rec,
        "real_time",
        "cam4",
        &format!("prometheus = \"127.0.0.1:{prom}\"\n[[concept]]{cat_only}"),
    );
    let mut d = daemon(&cfg, &broker.url(), &[]);
    sub.wait_for("online", Duration::from_secs(30), |s| {
        s.on("/status").iter().any(|v| v["state"] == "online")
    });
    let cmd = |c: &str, body: Value| {
        sub.publish(
            &format!("edgebind/cam4/cmd/{c}"),
            body.to_string().into_bytes(),
        )
    };
    cmd(
        "concepts/add",
        json!({"v": 1, "request_id": "add1", "concept": {"name": "coffee", "text": "a cup of coffee", "watch": "vision", "enter": 0.3, "exit": 0.2}}),
    );
    // Malformed: not JSON; no request id; bad concept; unknown command; oversized.
    sub.publish("edgebind/cam4/cmd/concepts/add", b"{not json".to_vec());
    cmd("concepts/add", json!({"v": 1, "concept": {}}));
    cmd(
        "concepts/add",
        json!({"v": 1, "request_id": "bad1", "concept": {"name": "x", "text": "t", "enter": 0.3, "exit": 0.9}}),
    );
    cmd(
        "concepts/add",
        json!({"v": 1, "request_id": "dup1", "concept": {"name": "cat", "text": "a cat", "enter": 0.3}}),
    );
    cmd("reboot", json!({"v": 1, "request_id": "unk1"}));
    cmd(
        "concepts/remove",
        json!({"v": 1, "request_id": "rm0", "name": "nothing"}),
    );
    sub.publish("edgebind/cam4/cmd/query", vec![b' '; 70 * 1024]);
    let reply = |id: &str| -> Option<Value> { sub.on(&format!("/reply/{id}")).pop() };
    sub.wait_for("replies", Duration::from_secs(20), |s| {
        ["add1", "bad1", "dup1", "unk1", "rm0"]
            .iter()
            .all(|id| s.on(&format!("/reply/{id}")).len() == 1)
            && s.on("/reply/_error").len() == 3
    });
    assert_eq!(reply("add1").unwrap()["ok"], true, "{:?}", reply("add1"));
    let bad = reply("bad1").unwrap();
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("hysteresis"),
        "{bad}"
    );
    assert!(
        reply("dup1").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("exists")
    );
    assert!(
        reply("unk1").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    assert!(
        reply("rm0").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("no concept")
    );
    let errs = sub.on("/reply/_error");
    assert!(
        errs.iter()
            .any(|e| e["error"].as_str().unwrap().contains("not JSON")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e["error"].as_str().unwrap().contains("request_id")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e["error"].as_str().unwrap().contains("limit")),
        "{errs:?}"
    );
    // The added concept fires on the coffee photo (12 s - 18 s).
    sub.wait_for("the coffee's end", Duration::from_secs(40), |s| {
        s.events()
            .iter()
            .any(|e| e["concept"] == "coffee" && e["phase"] == "end")
    });
    let ev = sub.events();
    assert_eq!(
        ev.iter().map(summary).collect::<Vec<_>>(),
        expected_cat_coffee(),
        "{ev:#?}"
    );
    // History: "a cup of coffee" finds moments inside the coffee slide.
    cmd(
        "query",
        json!({"v": 1, "request_id": "q1", "text": "a cup of coffee", "k": 3}),
    );
    sub.wait_for("query reply", Duration::from_secs(10), |s| {
        !s.on("/reply/q1").is_empty()
    });
    let q = reply("q1").unwrap();
    let hits = q["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3, "{q}");
    for h in hits {
        let t = h["t"]["mono_ns"].as_u64().unwrap();
        assert!((12 * S..=18 * S).contains(&t), "{q}");
    }
    // The same search from the command line.
    let o = Command::new(edgebind_bin())
        .args([
            "query",
            "a cup of coffee",
            "-k",
            "2",
            "--last",
            "10m",
            "--json",
            "--device-id",
            "cam4",
        ])
        .args(["--broker", &broker.url()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cli: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cli["hits"].as_array().unwrap().len(), 2, "{cli}");
    assert!(
        (12 * S..=18 * S).contains(&cli["hits"][0]["t"]["mono_ns"].as_u64().unwrap()),
        "{cli}"
    );
    // Prometheus text on GET /metrics.
    let metrics = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", prom)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        body
    };
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    let moments: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgebind_moments_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(moments > 20.0, "{metrics}");
    assert!(
        metrics.contains("edgebind_encoder_windows_total{modality=\"vision\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("edgebind_mqtt_connected 1"), "{metrics}");
    // Restart: the added concept is still there.
    unsafe_kill(d.id(), "TERM");
    assert!(d.wait().unwrap().success());
    let mut d = daemon(&cfg, &broker.url(), &[]);
    std::thread::sleep(Duration::from_millis(500));
    sub.wait_for("online again", Duration::from_secs(30), |s| {
        s.on("/status")
            .last()
            .is_some_and(|v| v["state"] == "online")
    });
    cmd("concepts/list", json!({"v": 1, "request_id": "ls1"}));
    sub.wait_for("list reply", Duration::from_secs(10), |s| {
        !s.on("/reply/ls1").is_empty()
    });
    let names: Vec<String> = reply("ls1").unwrap()["concepts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["name"].as_str().unwrap(),
                c["source"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, vec!["cat:config", "coffee:runtime"]);
    cmd(
        "concepts/remove",
        json!({"v": 1, "request_id": "rm1", "name": "cat"}),
    );
    sub.wait_for("remove reply", Duration::from_secs(10), |s| {
        !s.on("/reply/rm1").is_empty()
    });
    assert_eq!(reply("rm1").unwrap()["removed"], "cat");
    unsafe_kill(d.id(), "TERM");
    assert!(d.wait().unwrap().success());
    let overlay: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/concepts.json")).unwrap()).unwrap();
    assert_eq!(overlay["removed"], json!(["cat"]));
    assert_eq!(overlay["added"][0]["name"], "coffee");
}

#[test]
fn username_and_password_are_used_and_a_refusal_keeps_events_in_the_outbox() {
    let dir = tmpdir("auth");
    let rec = photos(&dir);
    let pw = dir.join("passwords");
    let ok = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["edge", "s3cret"])
        .status()
        .unwrap();
    assert!(ok.success());
    let broker = Mosquitto::start_with(
        &dir,
        &format!("allow_anonymous false\npassword_file {}\n", pw.display()),
    );
    let sub = Sub::login(
        broker.port,
        "sub-auth",
        &["edgebind/cam5/events"],
        Some(("edge", "s3cret")),
    );
    let with_login = |device: &str, password: &str| {
        let cfg = config(&dir, &rec, "fast", device, CONCEPTS);
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "[health]",
            &format!("[broker]\nusername = \"edge\"\npassword = \"{password}\"\n[health]"),
        );
        let text = text.replace(
            &dir.join("state").display().to_string(),
            &dir.join(format!("state-{device}")).display().to_string(),
        );
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    // The right password: the events arrive.
    let mut d = daemon(
        &with_login("cam5", "s3cret"),
        &broker.url(),
        &["--exit-at-end"],
    );
    assert!(d.wait().unwrap().success());
    sub.wait_for("4 events", Duration::from_secs(10), |s| {
        s.events().len() >= 4
    });
    assert_eq!(
        sub.events().iter().map(summary).collect::<Vec<_>>(),
        expected_cat_coffee()
    );
    // A wrong password: refused, retried, and the 4 messages stay on disk.
    let out = Command::new(edgebind_bin())
        .args(["run", "--exit-at-end", "--drain-timeout", "2", "--config"])
        .arg(with_login("cam6", "wrong"))
        .args(["--broker", &broker.url()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("4 event message(s) not acknowledged"), "{err}");
    assert_eq!(outbox_messages(&dir.join("state-cam6/outbox")), 4);
}

/// Messages written to a daemon's outbox (`<seq>.json`). An append in
/// progress is a `.tmp` until its rename, and a kill -9 then loses it (the
/// daemon has not counted it as written), so it is not one of them.
fn outbox_messages(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}
