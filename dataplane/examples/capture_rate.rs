//! Captures on an interface with a chosen backend and counts frames and bytes, printing the rate
//! every second and, at the end, the receiver's CPU time per packet (getrusage, all threads)
//! and max RSS. Used by `bench/capture.sh`; raw capture + counting only (no decode).
//!
//! ```text
//! capture_rate IFACE [--backend auto|xdp|packet] [--xdp-mode auto|native|generic]
//!                    [--seconds N] [--mirror] [--spins N] [--coalesce-us N] [--coalesce-max-us N]
//!                    [--frames N] [--ring N] [--batch N] [--fanout N] [--no-pin] [--touch] [--quiet]
//! ```
//! `--touch` reads each frame's first bytes (as any decoder must, and as `tcpdump -w` does
//! when it copies the frame out): the cost of receiving and looking at every frame, the floor
//! under `decnet sniffer`'s cost per packet with the same backend settings.
//! Stops after `--seconds` (default 10) or on SIGINT/SIGTERM. Last line: `RESULT k=v ...`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use decnet_dataplane::capture::{
    BackendKind, Capture, CaptureConfig, CaptureMode, FrameConsumer, XdpAttach,
};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Counts locally and publishes once per batch, so the hot path touches no shared cache line.
struct Counter {
    frames: u64,
    bytes: u64,
    touch: bool,
    /// The first bytes of every frame summed (`--touch`), published so the reads stay.
    sum: u64,
    shared: Arc<(AtomicU64, AtomicU64)>,
    shared_sum: Arc<AtomicU64>,
}

impl FrameConsumer for Counter {
    fn frame(&mut self, data: &[u8], _ts: u64) {
        self.frames += 1;
        self.bytes += data.len() as u64;
        if self.touch {
            let mut head = [0u8; 8];
            let n = data.len().min(8);
            head[..n].copy_from_slice(&data[..n]);
            self.sum = self.sum.wrapping_add(u64::from_le_bytes(head));
        }
    }
    fn batch_end(&mut self) {
        self.shared
            .0
            .fetch_add(std::mem::take(&mut self.frames), Ordering::Relaxed);
        self.shared
            .1
            .fetch_add(std::mem::take(&mut self.bytes), Ordering::Relaxed);
        self.shared_sum
            .fetch_add(std::mem::take(&mut self.sum), Ordering::Relaxed);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: capture_rate IFACE [--backend auto|xdp|packet] [--xdp-mode auto|native|generic] [--seconds N] [--mirror] [--spins N] [--coalesce-us N] [--coalesce-max-us N] [--frames N] [--ring N] [--batch N] [--fanout N] [--no-pin] [--touch] [--quiet]"
    );
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs (e.g. why auto fell back to AF_PACKET) go to stderr; RUST_LOG tunes them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let Some(iface) = args.next() else { usage() };
    let mut cfg = CaptureConfig::new(iface);
    let mut seconds = 10u64;
    let mut quiet = false;
    let mut touch = false;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--backend" => cfg.backend = val().parse()?,
            "--xdp-mode" => {
                cfg.xdp_attach = match val().as_str() {
                    "auto" => XdpAttach::Auto,
                    "native" => XdpAttach::Native,
                    "generic" => XdpAttach::Generic,
                    _ => usage(),
                }
            }
            "--seconds" => seconds = val().parse()?,
            "--spins" => cfg.xsk.busy_poll_spins = val().parse()?,
            "--coalesce-us" => cfg.xsk.coalesce_us = val().parse()?,
            "--coalesce-max-us" => cfg.xsk.coalesce_max_us = val().parse()?,
            "--frames" => cfg.xsk.frames = val().parse()?,
            "--ring" => {
                let entries = val().parse()?;
                cfg.xsk.rx_ring = entries;
                cfg.xsk.fill_ring = entries;
            }
            "--batch" => cfg.xsk.batch = val().parse()?,
            "--fanout" => cfg.packet.fanout = val().parse()?,
            "--mirror" => cfg.mode = CaptureMode::Mirror,
            "--no-pin" => cfg.pin_threads = false,
            "--quiet" => quiet = true,
            "--touch" => touch = true,
            _ => usage(),
        }
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut cap = Capture::open(&cfg)?;
    let info = cap.info().clone();
    eprintln!(
        "capturing on {} with {:?} ({} queue(s)){}",
        info.capture_interface,
        info.backend,
        info.queues,
        info.fallback_reason
            .as_deref()
            .map(|r| format!("; fell back: {r}"))
            .unwrap_or_default()
    );
    // Ready marker for scripts: the backend is attached from here on.
    println!("READY");
    let shared = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let shared_sum = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let ru0 = rusage();
    let mut first_frame: Option<Instant> = None;
    let mut last_frame = start;
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let (sh, sum) = (Arc::clone(&shared), Arc::clone(&shared_sum));
        let runner = s.spawn(|| {
            cap.run(&STOP, move |_| Counter {
                frames: 0,
                bytes: 0,
                touch,
                sum: 0,
                shared: Arc::clone(&sh),
                shared_sum: Arc::clone(&sum),
            })
        });
        let mut prev = 0;
        let mut tick = Instant::now();
        while !STOP.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_millis(100));
            let now = shared.0.load(Ordering::Relaxed);
            if now > prev {
                first_frame.get_or_insert_with(Instant::now);
                last_frame = Instant::now();
            }
            if tick.elapsed() >= Duration::from_secs(1) {
                if !quiet {
                    eprintln!(
                        "{:>6.1}s {:>10} pps",
                        start.elapsed().as_secs_f64(),
                        (now - prev) as f64 / tick.elapsed().as_secs_f64()
                    );
                }
                prev = now;
                tick = Instant::now();
            }
        }
        STOP.store(true, Ordering::Relaxed);
        runner.join().map_err(|_| "capture thread panicked")??;
        Ok(())
    })?;
    let ru1 = rusage();
    let frames = shared.0.load(Ordering::Relaxed);
    let bytes = shared.1.load(Ordering::Relaxed);
    let st = cap.stats();
    let xdp = cap.xdp_counters().transpose()?;
    let active = first_frame
        .map_or(0.0, |f| last_frame.duration_since(f).as_secs_f64())
        .max(1e-9);
    let (user, sys) = (ru1.0 - ru0.0, ru1.1 - ru0.1);
    let backend = match info.backend {
        BackendKind::Xdp { attach, bind } => format!("af_xdp/{attach:?}/{bind:?}"),
        BackendKind::Packet => "af_packet".to_owned(),
    };
    println!(
        "RESULT backend={backend} packets={frames} bytes={bytes} active_s={active:.2} pps={:.0} user_s={user:.3} sys_s={sys:.3} cpu_ns_per_pkt={:.0} maxrss_kb={} dropped={} kernel_drops={} xdp={:?} touched_sum={}",
        frames as f64 / active,
        if frames > 0 {
            (user + sys) * 1e9 / frames as f64
        } else {
            0.0
        },
        ru1.2,
        st.dropped,
        st.kernel_drops,
        xdp,
        shared_sum.load(Ordering::Relaxed),
    );
    cap.stop()?;
    Ok(())
}

/// (user s, system s, max RSS KiB) of this process, all threads.
fn rusage() -> (f64, f64, i64) {
    // SAFETY: plain out-struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime), ru.ru_maxrss)
}
