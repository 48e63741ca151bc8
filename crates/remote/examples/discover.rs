//! Discover the interpreter of a process and print it as JSON (one line), or
//! the error as `{"error": "..."}` with exit status 1. The test harness in
//! tests/remote/ drives lastwords-remote through this program.
//!
//! ```text
//! discover PID [--pause] [--hold] [--repeat N]
//! ```
//!
//! * `--pause`: stop every thread with ptrace while reading the thread list,
//!   and report how long they stayed stopped.
//! * `--hold`: with `--pause`, print `paused` on stdout once every thread is
//!   stopped, then wait for a line on stdin before resuming (to test that a
//!   dumper killed mid-pause never leaves the target stopped).
//! * `--repeat N`: run discovery N times and report the median and minimum
//!   time (measurement).

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use lastwords_core::memory::ProcessMemory;
use lastwords_remote::discover::{GilAt, TidAt};
use lastwords_remote::{Interpreter, attach, discover};

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hex(v: usize) -> String {
    format!("\"0x{v:x}\"")
}

fn describe(i: &Interpreter, threads: &[lastwords_remote::discover::ThreadInfo]) -> String {
    let mut o = String::from("{");
    let _ = write!(o, "\"pid\":{},", i.pid);
    let _ = write!(o, "\"version\":{},", json_str(&i.version.to_string()));
    let _ = write!(o, "\"hexversion\":{},", i.version.hex());
    let _ = write!(
        o,
        "\"version_source\":{},",
        json_str(i.version_source.name())
    );
    let sources: Vec<String> = i
        .version_sources
        .iter()
        .map(|(s, v)| format!("[{},{}]", json_str(s.name()), json_str(&v.to_string())))
        .collect();
    let _ = write!(o, "\"version_sources\":[{}],", sources.join(","));
    let _ = write!(o, "\"debug_build\":{},", i.debug_build);
    let _ = write!(
        o,
        "\"binary\":{{\"path\":{},\"opened_through\":{},\"shared\":{},\"load_bias\":{},\"build_id\":{},\"has_symtab\":{}}},",
        json_str(&i.binary.path.display().to_string()),
        json_str(&format!("{:?}", i.binary.opened_through)),
        i.binary.shared,
        hex(i.binary.load_bias),
        match &i.binary.build_id {
            Some(b) => json_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
            None => "null".into(),
        },
        i.binary.has_symtab,
    );
    let _ = write!(
        o,
        "\"runtime\":{},\"runtime_source\":{},",
        i.runtime.map(hex).unwrap_or("null".into()),
        i.runtime_source.map(json_str).unwrap_or("null".into())
    );
    let _ = write!(
        o,
        "\"interp_head\":{},\"interp_head_source\":{},\"interpreters\":{},",
        hex(i.interp_head),
        json_str(i.interp_head_source),
        i.interpreters
    );
    let t = &i.types;
    let _ = write!(
        o,
        "\"types\":{{\"type\":{},\"unicode\":{},\"string\":{},\"bytes\":{},\"code\":{},\"module\":{}}},",
        hex(t.type_type),
        hex(t.unicode),
        t.string.map(hex).unwrap_or("null".into()),
        t.bytes.map(hex).unwrap_or("null".into()),
        hex(t.code),
        hex(t.module)
    );
    let layout = match i.layout.major {
        2 => "\"py27\"".to_string(),
        _ => format!("\"py3 minor {}\"", i.layout.minor),
    };
    let _ = write!(
        o,
        "\"layout\":{layout},\"layout_source\":{},",
        json_str(i.layout_source)
    );
    let gil = match i.gil {
        GilAt::CurrentThreadState { var } => {
            format!("{{\"current_thread_state\":{}}}", hex(var))
        }
        GilAt::State {
            locked,
            last_holder,
        } => format!(
            "{{\"locked\":{},\"last_holder\":{}}}",
            hex(locked),
            hex(last_holder)
        ),
    };
    let _ = write!(o, "\"gil\":{gil},");
    let tid = match i.tid {
        TidAt::ThreadState { offset } => format!("{{\"tstate_offset\":{offset}}}"),
        TidAt::Pthread { offset, source } => format!(
            "{{\"pthread_offset\":{offset},\"source\":{}}}",
            json_str(source)
        ),
    };
    let _ = write!(o, "\"tid\":{tid},");
    let threads: Vec<String> = threads
        .iter()
        .map(|t| {
            format!(
                "{{\"tstate\":{},\"thread_id\":{},\"tid\":{},\"tid_verified\":{},\"holds_gil\":{}}}",
                hex(t.tstate),
                t.thread_id,
                t.tid.map(|t| t.to_string()).unwrap_or("null".into()),
                t.tid_verified,
                t.holds_gil
            )
        })
        .collect();
    let _ = write!(o, "\"threads\":[{}]", threads.join(","));
    o
}

fn fail(e: impl std::fmt::Display) -> ! {
    println!("{{\"error\":{}}}", json_str(&e.to_string()));
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pid: i32 = match args.first().and_then(|a| a.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: discover PID [--pause] [--hold] [--repeat N]");
            std::process::exit(2)
        }
    };
    let pause = args.iter().any(|a| a == "--pause");
    let hold = args.iter().any(|a| a == "--hold");
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1)
        .max(1);

    let mut times = Vec::new();
    let mut found = None;
    for _ in 0..repeat {
        let start = Instant::now();
        let result = discover(pid);
        times.push(start.elapsed());
        match result {
            Ok(i) => found = Some(i),
            Err(e) => fail(e),
        }
    }
    let Some(interp) = found else {
        fail("nothing discovered")
    };
    let first = times[0];
    times.sort();
    let median = times[times.len() / 2];
    let min = times[0];

    let mem = ProcessMemory::new(lastwords_remote::error::reader_task(pid).unwrap_or(pid));
    let mut pause_info = String::from("null");
    let threads = if pause {
        let start = Instant::now();
        let paused = match attach::pause(pid, Duration::from_secs(5)) {
            Ok(p) => p,
            Err(e) => fail(e),
        };
        let stopped_after = start.elapsed();
        let threads = interp.read_threads(&mem, &lastwords_remote::discover::task_ids(pid));
        let regs_ok = paused
            .tids()
            .iter()
            .filter(|&&t| paused.registers(t).is_ok())
            .count();
        if hold {
            println!("paused");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
        let tids = paused.tids().len();
        let report = paused.resume();
        pause_info = format!(
            "{{\"tids\":{tids},\"registers_read\":{regs_ok},\"stop_us\":{},\"stopped_us\":{},\"resumed\":{}}}",
            stopped_after.as_micros(),
            report.stopped_for.as_micros(),
            report.resumed
        );
        match threads {
            Ok(t) => t,
            Err(e) => fail(e),
        }
    } else {
        interp.threads.clone()
    };
    let mut out = describe(&interp, &threads);
    let _ = write!(
        out,
        ",\"pause\":{pause_info},\"discover_us\":{{\"first\":{},\"median\":{},\"min\":{},\"runs\":{}}}}}",
        first.as_micros(),
        median.as_micros(),
        min.as_micros(),
        times.len()
    );
    println!("{out}");
}
