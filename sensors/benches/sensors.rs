//! `cargo bench -p edgebind-sensors --bench sensors`: prints the sensor layer's figures.
//!
//! * ring push+pop throughput, samples/s: one producer thread and one consumer
//!   thread moving IMU samples (the highest-rate stream), and a 224x224 RGB frame
//!   ring filled in place (the largest items);
//! * simulated-rig generation speed as a multiple of real time, full 5-sensor
//!   rig at 224x224 frames, on one core (this thread), with the per-modality cost;
//! * MCAP recording throughput of the same rig.
//!
//! Each figure is the median of several runs. Pass `--quick` for shorter runs.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use edgebind_sensors::Modality;
use edgebind_sensors::recording::Recorder;
use edgebind_sensors::ring;
use edgebind_sensors::sample::{ImuSample, Payload, PixelFormat, Sample};
use edgebind_sensors::sim::{SimConfig, SimWorld};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Producer and consumer threads; returns (pushed/s, delivered/s, dropped fraction).
fn ring_threads(n: u64, capacity: usize) -> (f64, f64, f64) {
    let (mut p, mut c) = ring::channel(capacity, || Sample::empty(Modality::Imu));
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let consumer = std::thread::spawn(move || {
        let mut sum = 0f32;
        loop {
            let finished = d2.load(Ordering::Acquire);
            match c.pop_with(|s| {
                if let Payload::Imu(m) = &s.payload {
                    m.accel[0]
                } else {
                    0.0
                }
            }) {
                Some(v) => sum += v,
                None if finished => break,
                None => std::hint::spin_loop(),
            }
        }
        black_box(sum);
        c.counters()
    });
    let t = Instant::now();
    for i in 0..n {
        p.push_with(|s| {
            s.t.mono_ns = i;
            s.payload = Payload::Imu(ImuSample {
                accel: [i as f32, 0.0, 9.81],
                gyro: [0.0; 3],
            });
        });
    }
    done.store(true, Ordering::Release);
    let pushed_in = t.elapsed().as_secs_f64();
    let k = consumer.join().unwrap();
    let el = t.elapsed().as_secs_f64();
    (
        n as f64 / pushed_in,
        k.delivered as f64 / el,
        k.dropped as f64 / n as f64,
    )
}

/// One thread, push then pop, 224x224 RGB frames filled in place: frames/s.
fn ring_frames(n: u64) -> f64 {
    let (mut p, mut c) = ring::channel(8, || Sample::empty(Modality::Vision));
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..n {
        p.push_with(|s| {
            let f = s.frame_mut();
            f.reshape(224, 224, PixelFormat::Rgb8);
            f.data[0] = i as u8;
        });
        acc += c
            .pop_with(|s| s.frame().map_or(0, |f| f.data[0] as u64))
            .unwrap();
    }
    black_box(acc);
    n as f64 / t.elapsed().as_secs_f64()
}

/// Generates `secs` of the full rig; returns (x real time, seconds per modality).
fn sim_speed(secs: f64) -> (f64, [f64; 5], [u64; 5]) {
    let mut world = SimWorld::new(SimConfig {
        seed: 11,
        ..SimConfig::default()
    })
    .unwrap();
    let until = (secs * 1e9) as u64;
    let mut s = Sample::empty(Modality::Vision);
    let mut per = [0f64; 5];
    let mut counts = [0u64; 5];
    let t = Instant::now();
    loop {
        let (m, ts) = world.peek();
        if ts.mono_ns >= until {
            break;
        }
        let t0 = Instant::now();
        world.next_into(&mut s);
        per[m.index()] += t0.elapsed().as_secs_f64();
        counts[m.index()] += 1;
        black_box(&s);
    }
    (secs / t.elapsed().as_secs_f64(), per, counts)
}

fn record_speed(secs: f64) -> (f64, f64) {
    let mut world = SimWorld::new(SimConfig::default()).unwrap();
    let until = (secs * 1e9) as u64;
    let mut samples = Vec::new();
    loop {
        let (m, ts) = world.peek();
        if ts.mono_ns >= until {
            break;
        }
        let mut s = Sample::empty(m);
        world.next_into(&mut s);
        samples.push(s);
    }
    let t = Instant::now();
    let mut rec = Recorder::new(
        Cursor::new(Vec::with_capacity(64 << 20)),
        &Default::default(),
    )
    .unwrap();
    for s in &samples {
        rec.write_sample(s).unwrap();
    }
    let bytes = rec.finish_into_inner().unwrap().into_inner().len();
    let el = t.elapsed().as_secs_f64();
    (bytes as f64 / el / 1e6, secs / el)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 5 };
    println!("edgebind-sensors bench ({} runs each, median)", runs);

    let n = if quick { 1_000_000 } else { 5_000_000 };
    let mut pushes = Vec::new();
    let mut rates = Vec::new();
    let mut drops = Vec::new();
    for _ in 0..runs {
        let (p, r, d) = ring_threads(n, 1024);
        pushes.push(p);
        rates.push(r);
        drops.push(d);
    }
    println!(
        "ring, IMU samples, producer + consumer threads, capacity 1024: {:.2} M pushes/s, {:.2} M samples/s delivered ({:.1}% dropped as oldest: the consumer is the slower side)",
        median(pushes) / 1e6,
        median(rates) / 1e6,
        median(drops) * 100.0
    );
    let frames: Vec<f64> = (0..runs)
        .map(|_| ring_frames(if quick { 20_000 } else { 100_000 }))
        .collect();
    println!(
        "ring push+pop, 224x224 RGB frames filled in place, 1 thread: {:.2} M frames/s",
        median(frames) / 1e6
    );

    let secs = if quick { 10.0 } else { 30.0 };
    let mut speeds = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let (x, per, counts) = sim_speed(secs);
        speeds.push(x);
        last = Some((per, counts));
    }
    println!(
        "sim rig generation, 5 sensors, 224x224 camera+depth, 160x120 thermal, 16 kHz audio, 200 Hz IMU, 1 core: {:.1}x real time",
        median(speeds)
    );
    if let Some((per, counts)) = last {
        for m in Modality::ALL {
            let i = m.index();
            println!(
                "  {:<8} {:>6} samples  {:>8.1} us/sample  {:>5.1}% of one core per real-time second",
                m.as_str(),
                counts[i],
                per[i] / counts[i].max(1) as f64 * 1e6,
                per[i] / secs * 100.0
            );
        }
    }
    let rec: Vec<(f64, f64)> = (0..runs)
        .map(|_| record_speed(if quick { 5.0 } else { 10.0 }))
        .collect();
    println!(
        "MCAP recording of the sim rig (in memory): {:.0} MB/s, {:.1}x real time",
        median(rec.iter().map(|r| r.0).collect()),
        median(rec.iter().map(|r| r.1).collect())
    );
}
