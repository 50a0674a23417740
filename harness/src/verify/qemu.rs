//! The NEON rows on an x86_64 machine: only the code under test runs under emulation.
//!
//! The aarch64 build of this harness (`scripts/neon.sh` builds it next to this one, at
//! `target/aarch64-unknown-linux-gnu/<profile>/harness`, or `$HARNESS_AARCH64_BIN`) runs under
//! `qemu-aarch64` as a kernel server, `harness neon-serve`. A NEON row is checked here like
//! any other row: its cases, the f64 reference and its bounds, the scalar oracle, the
//! comparisons and the shrinking of a failure all run natively, sharing the x86 rows'
//! prepared cases. Only each call of the NEON kernel crosses to the server, as a [`Call`] (the
//! kernel, its shape and its input and output buffers, byte for byte), and its output comes
//! back. Emulated f64 arithmetic is what made the NEON rows slow when they ran whole under
//! qemu: two thirds of their time went to the reference.
//!
//! The server is trusted only when it reports this binary's build id (commit and source hash,
//! `build.rs`): a build of other sources would vouch for code this one does not contain.
//!
//! The verify families call kernels through the functions of this module ([`matmul`],
//! [`rmsnorm`], ...), which run a NEON call on this thread's server when the thread has one
//! ([`with_server`]) and call the kernel directly otherwise.

use super::BUILD_ID;
use crate::registry::{Design, Kernel};
use bytemuck::Pod;
use half::f16;
use kernels::attention::{self, AttentionDims, KvElem};
use kernels::matmul::{self, MatmulDims};
use kernels::ops::{self, RopeStyle};
use kernels::Isa;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The aarch64 sysroot qemu loads the dynamic linker and libc from.
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// One kernel call. Output buffers carry their initial contents: the checks fill them with
/// sentinels, and the in-place kernels read them.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// One of the matmul functions, chosen by family and design (see [`matmul_fn`]).
    Matmul {
        kernel: Kernel,
        design: Design,
        /// `n`, `k`, `rows`, `y_stride`.
        dims: [usize; 4],
        x: ByteBuf,
        w: ByteBuf,
        y: ByteBuf,
    },
    /// An activation quantizer: `Design::Q8_0` or `Design::Q8_1`.
    Quantize {
        design: Design,
        x: ByteBuf,
        out: ByteBuf,
    },
    /// Flash attention over an f32 or f16 cache (`Design::FlashF32Kv`, `Design::FlashF16Kv`).
    Attention {
        design: Design,
        /// `n_q`, `n_head`, `n_head_kv`, `head_dim`, `pos0`.
        dims: [usize; 5],
        heads: [usize; 2],
        q: ByteBuf,
        k: ByteBuf,
        v: ByteBuf,
        out: ByteBuf,
        scratch_len: usize,
    },
    RmsNorm {
        x: ByteBuf,
        w: ByteBuf,
        eps: f32,
        out: ByteBuf,
    },
    Rope {
        neox: bool,
        head_dim: usize,
        x: ByteBuf,
        cos: ByteBuf,
        sin: ByteBuf,
    },
    Swiglu {
        gate: ByteBuf,
        up: ByteBuf,
        out: ByteBuf,
    },
    Softmax {
        x: ByteBuf,
    },
    ResidualAdd {
        y: ByteBuf,
        x: ByteBuf,
    },
    Exp {
        x: ByteBuf,
    },
}

/// The server's first message.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    build: String,
    /// Why NEON cannot run there, or `None`.
    neon_unavailable: Option<String>,
}

/// The reply to a [`Call`]: the output buffer after the call, or why there is none (the
/// kernel panicked, or the call was malformed).
type Reply = Result<ByteBuf, String>;

fn bytes<T: Pod>(v: &[T]) -> ByteBuf {
    ByteBuf::from(bytemuck::cast_slice::<T, u8>(v).to_vec())
}

/// A buffer's values, copied to an aligned vector.
fn values<T: Pod>(b: &ByteBuf) -> Result<Vec<T>, String> {
    if !b.len().is_multiple_of(std::mem::size_of::<T>()) {
        return Err(format!(
            "a buffer of {} bytes is not whole {}-byte values",
            b.len(),
            std::mem::size_of::<T>()
        ));
    }
    Ok(bytemuck::pod_collect_to_vec(b))
}

fn matmul_dims(d: [usize; 4]) -> MatmulDims {
    MatmulDims {
        n: d[0],
        k: d[1],
        rows: d[2],
        y_stride: d[3],
    }
}

/// A matmul function of the kernels crate, with its activation and weight element types.
type MatmulFn<X, W> = fn(Isa, &[X], &[W], &mut [f32], MatmulDims);

fn run_matmul<X: Pod, W: Pod>(
    f: MatmulFn<X, W>,
    isa: Isa,
    x: &ByteBuf,
    w: &ByteBuf,
    y: &ByteBuf,
    dims: MatmulDims,
) -> Reply {
    let (x, w, mut y) = (values::<X>(x)?, values::<W>(w)?, values::<f32>(y)?);
    f(isa, &x, &w, &mut y, dims);
    Ok(bytes(&y))
}

/// The matmul a family and design name, run on `isa` with the call's buffers.
fn matmul_fn(
    kernel: Kernel,
    design: Design,
    isa: Isa,
    bufs: [&ByteBuf; 3],
    dims: MatmulDims,
) -> Reply {
    use kernels::quant::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K};
    use kernels::quant::{BlockQ8_0, BlockQ8_1};
    let [x, w, y] = bufs;
    match (kernel, design) {
        (Kernel::MatmulQ4K, Design::F32) => {
            run_matmul::<f32, BlockQ4K>(matmul::matmul_q4k_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ4K, Design::Q8K) => {
            run_matmul::<BlockQ8K, BlockQ4K>(matmul::matmul_q4k_q8k, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ6K, Design::F32) => {
            run_matmul::<f32, BlockQ6K>(matmul::matmul_q6k_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ6K, Design::Q8K) => {
            run_matmul::<BlockQ8K, BlockQ6K>(matmul::matmul_q6k_q8k, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ8_0, Design::F32) => {
            run_matmul::<f32, BlockQ8_0>(matmul::matmul_q8_0_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ8_0, Design::Q8_0) => {
            run_matmul::<BlockQ8_0, BlockQ8_0>(matmul::matmul_q8_0_q8_0, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ4_0, Design::F32) => {
            run_matmul::<f32, BlockQ4_0>(matmul::matmul_q4_0_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ4_0, Design::Q8_0) => {
            run_matmul::<BlockQ8_0, BlockQ4_0>(matmul::matmul_q4_0_q8_0, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ5_0, Design::F32) => {
            run_matmul::<f32, BlockQ5_0>(matmul::matmul_q5_0_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ5_0, Design::Q8_0) => {
            run_matmul::<BlockQ8_0, BlockQ5_0>(matmul::matmul_q5_0_q8_0, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ4_1, Design::F32) => {
            run_matmul::<f32, BlockQ4_1>(matmul::matmul_q4_1_f32, isa, x, w, y, dims)
        }
        (Kernel::MatmulQ4_1, Design::Q8_1) => {
            run_matmul::<BlockQ8_1, BlockQ4_1>(matmul::matmul_q4_1_q8_1, isa, x, w, y, dims)
        }
        (Kernel::MatmulF16, Design::F32) => {
            run_matmul::<f32, f16>(matmul::matmul_f16_f32, isa, x, w, y, dims)
        }
        (k, d) => Err(format!("no matmul {} / {}", k.name(), d.name())),
    }
}

fn run_attention<KV: KvElem + Pod>(isa: Isa, call: &Call) -> Reply {
    let Call::Attention {
        dims,
        heads,
        q,
        k,
        v,
        out,
        scratch_len,
        ..
    } = call
    else {
        unreachable!("called with an attention call")
    };
    let dims = AttentionDims {
        n_q: dims[0],
        n_head: dims[1],
        n_head_kv: dims[2],
        head_dim: dims[3],
        pos0: dims[4],
    };
    let (q, k, v) = (values::<f32>(q)?, values::<KV>(k)?, values::<KV>(v)?);
    let mut out = values::<f32>(out)?;
    let mut scratch = vec![0f32; *scratch_len];
    attention::flash_attention(
        isa,
        &q,
        &k,
        &v,
        &mut out,
        &mut scratch,
        dims,
        heads[0]..heads[1],
    );
    Ok(bytes(&out))
}

/// Runs `call` on `isa`: what the server does with each call (and, on any ISA, what the
/// round-trip tests compare with the direct call).
pub fn execute(isa: Isa, call: &Call) -> Reply {
    use kernels::quant::{BlockQ8_0, BlockQ8_1};
    match call {
        Call::Matmul {
            kernel,
            design,
            dims,
            x,
            w,
            y,
        } => matmul_fn(*kernel, *design, isa, [x, w, y], matmul_dims(*dims)),
        Call::Quantize { design, x, out } => {
            let x = values::<f32>(x)?;
            match design {
                Design::Q8_0 => {
                    let mut o = values::<BlockQ8_0>(out)?;
                    matmul::quantize_q8_0(isa, &x, &mut o);
                    Ok(bytes(&o))
                }
                Design::Q8_1 => {
                    let mut o = values::<BlockQ8_1>(out)?;
                    matmul::quantize_q8_1(isa, &x, &mut o);
                    Ok(bytes(&o))
                }
                d => Err(format!("no quantizer {}", d.name())),
            }
        }
        Call::Attention { design, .. } => match design {
            Design::FlashF32Kv => run_attention::<f32>(isa, call),
            Design::FlashF16Kv => run_attention::<f16>(isa, call),
            d => Err(format!("no attention design {}", d.name())),
        },
        Call::RmsNorm { x, w, eps, out } => {
            let mut o = values::<f32>(out)?;
            ops::rmsnorm(isa, &values::<f32>(x)?, &values::<f32>(w)?, *eps, &mut o);
            Ok(bytes(&o))
        }
        Call::Rope {
            neox,
            head_dim,
            x,
            cos,
            sin,
        } => {
            let style = if *neox {
                RopeStyle::NeoxHalves
            } else {
                RopeStyle::AdjacentPairs
            };
            let mut x = values::<f32>(x)?;
            let (cos, sin) = (values::<f32>(cos)?, values::<f32>(sin)?);
            ops::rope(isa, style, &mut x, *head_dim, &cos, &sin);
            Ok(bytes(&x))
        }
        Call::Swiglu { gate, up, out } => {
            let mut o = values::<f32>(out)?;
            ops::swiglu(isa, &values::<f32>(gate)?, &values::<f32>(up)?, &mut o);
            Ok(bytes(&o))
        }
        Call::Softmax { x } => {
            let mut x = values::<f32>(x)?;
            ops::softmax(isa, &mut x);
            Ok(bytes(&x))
        }
        Call::ResidualAdd { y, x } => {
            let mut y = values::<f32>(y)?;
            ops::residual_add(isa, &mut y, &values::<f32>(x)?);
            Ok(bytes(&y))
        }
        Call::Exp { x } => {
            let mut x = values::<f32>(x)?;
            ops::exp_in_place(isa, &mut x);
            Ok(bytes(&x))
        }
    }
}

/// Frames: a little-endian u64 length, then the postcard encoding.
fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(value).map_err(std::io::Error::other)?;
    w.write_all(&(body.len() as u64).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// The next frame, or `None` at a clean end of stream.
fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 8];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// `harness neon-serve`: answers [`Call`]s on stdin with replies on stdout until stdin closes.
/// A kernel that panics answers with the panic's message; the server goes on.
pub fn serve() -> anyhow::Result<()> {
    // The message goes back in the reply; the default hook would print it to stderr too.
    std::panic::set_hook(Box::new(|_| {}));
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    let hello = Hello {
        build: BUILD_ID.to_string(),
        neon_unavailable: Isa::Neon.unavailable_reason().map(str::to_string),
    };
    write_frame(&mut output, &hello)?;
    while let Some(call) = read_frame::<Call>(&mut input)? {
        let reply: Reply = std::panic::catch_unwind(|| execute(Isa::Neon, &call))
            .unwrap_or_else(|panic| Err(panic_message(&panic)));
        write_frame(&mut output, &reply)?;
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("the NEON kernel panicked: {what}")
}

/// A running `harness neon-serve` under qemu.
pub struct Server {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the aarch64 build under qemu and checks its build id.
    pub fn start() -> Result<Server, String> {
        let bin = aarch64_binary()?;
        if !bin.exists() {
            return Err(format!(
                "no aarch64 build at {} (build it: scripts/neon.sh)",
                bin.display()
            ));
        }
        let mut child = Command::new("qemu-aarch64")
            .arg("-L")
            .arg(SYSROOT)
            .arg(&bin)
            .arg("neon-serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot run qemu-aarch64 ({e}); install qemu-user: scripts/setup.sh")
            })?;
        let to = BufWriter::new(child.stdin.take().expect("piped"));
        let mut from = BufReader::new(child.stdout.take().expect("piped"));
        let hello = match read_frame::<Hello>(&mut from) {
            Ok(Some(hello)) => hello,
            other => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = child.kill();
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                let why = match other {
                    Err(e) => e.to_string(),
                    _ => stderr.lines().last().unwrap_or("no output").to_string(),
                };
                return Err(format!(
                    "the aarch64 harness under qemu did not start: {why}"
                ));
            }
        };
        let mut server = Server { child, to, from };
        if hello.build != BUILD_ID {
            server.stop();
            return Err(format!(
                "the aarch64 build is of other sources (build {}, this one {BUILD_ID}; rebuild: scripts/neon.sh)",
                hello.build
            ));
        }
        if let Some(reason) = hello.neon_unavailable {
            server.stop();
            return Err(format!("NEON cannot run under qemu here: {reason}"));
        }
        Ok(server)
    }

    /// Sends `call` and waits for its reply.
    pub fn call(&mut self, call: &Call) -> Result<Reply, String> {
        write_frame(&mut self.to, call)
            .and_then(|()| read_frame::<Reply>(&mut self.from))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the server closed its output".to_string())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn aarch64_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("HARNESS_AARCH64_BIN") {
        return Ok(PathBuf::from(path));
    }
    let this = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    let profile_dir = this.parent().ok_or("this binary has no parent folder")?;
    let profile = profile_dir.file_name().ok_or("no profile folder")?;
    let target_dir = profile_dir.parent().ok_or("no target folder")?;
    Ok(target_dir
        .join("aarch64-unknown-linux-gnu")
        .join(profile)
        .join("harness"))
}

/// The server of a NEON worker thread: started at the thread's first call, and again after a
/// call that lost it (a crash of the emulated process fails that call, not the rest).
struct Slot {
    server: Option<Server>,
}

thread_local! {
    static SERVER: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// Runs `f` with NEON calls on this thread going to a server (given, or started when needed).
pub fn with_server<R>(server: Option<Server>, f: impl FnOnce() -> R) -> R {
    SERVER.with(|s| *s.borrow_mut() = Some(Slot { server }));
    let r = f();
    SERVER.with(|s| *s.borrow_mut() = None);
    r
}

/// Whether `isa`'s calls on this thread go to a server.
fn routed(isa: Isa) -> bool {
    isa == Isa::Neon && !Isa::Neon.is_available() && SERVER.with(|s| s.borrow().is_some())
}

/// Why `isa` cannot be checked from this thread, or `None`: NEON can on a thread with a server.
pub fn unavailable_reason(isa: Isa) -> Option<&'static str> {
    if routed(isa) {
        None
    } else {
        isa.unavailable_reason()
    }
}

/// Whether this thread's NEON calls run under qemu (the rows say so in their note).
pub fn neon_is_emulated() -> bool {
    routed(Isa::Neon)
}

/// Runs `call` on this thread's server and returns the output buffer. A failure (the kernel
/// panicked, the server died) panics here, inside the check, which fails the case as the
/// kernel's own panic would.
fn remote(call: Call) -> ByteBuf {
    let result = SERVER.with(|s| {
        let mut s = s.borrow_mut();
        let slot = s.as_mut().expect("routed: this thread has a server slot");
        if slot.server.is_none() {
            slot.server = Some(Server::start()?);
        }
        let server = slot.server.as_mut().expect("started above");
        match server.call(&call) {
            Ok(reply) => reply,
            Err(lost) => {
                slot.server = None;
                Err(format!("lost the qemu-aarch64 server: {lost}"))
            }
        }
    });
    result.unwrap_or_else(|e| panic!("NEON under qemu-aarch64: {e}"))
}

/// Copies the server's output into `out` (the same length, or the call failed).
fn fill<T: Pod>(out: &mut [T], got: ByteBuf) {
    let dst = bytemuck::cast_slice_mut::<T, u8>(out);
    assert_eq!(
        dst.len(),
        got.len(),
        "NEON under qemu-aarch64: the output came back with a different length"
    );
    dst.copy_from_slice(&got);
}

/// `f(isa, x, w, y, dims)`, the matmul of `kernel`/`design`, here or on this thread's server.
#[allow(clippy::too_many_arguments)]
pub fn matmul<X: Pod, W: Pod>(
    f: MatmulFn<X, W>,
    kernel: Kernel,
    design: Design,
    isa: Isa,
    x: &[X],
    w: &[W],
    y: &mut [f32],
    dims: MatmulDims,
) {
    if !routed(isa) {
        return f(isa, x, w, y, dims);
    }
    let got = remote(Call::Matmul {
        kernel,
        design,
        dims: [dims.n, dims.k, dims.rows, dims.y_stride],
        x: bytes(x),
        w: bytes(w),
        y: bytes(y),
    });
    fill(y, got);
}

/// [`matmul::quantize_q8_0`] or [`matmul::quantize_q8_1`] (by `design`), here or remotely.
pub fn quantize<B: Pod>(
    design: Design,
    isa: Isa,
    x: &[f32],
    out: &mut [B],
    local: fn(Isa, &[f32], &mut [B]),
) {
    if !routed(isa) {
        return local(isa, x, out);
    }
    let got = remote(Call::Quantize {
        design,
        x: bytes(x),
        out: bytes(out),
    });
    fill(out, got);
}

/// [`attention::flash_attention`], here or remotely (`design` names the cache element type).
#[allow(clippy::too_many_arguments)]
pub fn flash_attention<KV: KvElem + Pod>(
    design: Design,
    isa: Isa,
    q: &[f32],
    k: &[KV],
    v: &[KV],
    out: &mut [f32],
    scratch: &mut [f32],
    dims: AttentionDims,
    heads: Range<usize>,
) {
    if !routed(isa) {
        return attention::flash_attention(isa, q, k, v, out, scratch, dims, heads);
    }
    let got = remote(Call::Attention {
        design,
        dims: [
            dims.n_q,
            dims.n_head,
            dims.n_head_kv,
            dims.head_dim,
            dims.pos0,
        ],
        heads: [heads.start, heads.end],
        q: bytes(q),
        k: bytes(k),
        v: bytes(v),
        out: bytes(out),
        scratch_len: scratch.len(),
    });
    fill(out, got);
}

/// [`ops::rmsnorm`], here or remotely.
pub fn rmsnorm(isa: Isa, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    if !routed(isa) {
        return ops::rmsnorm(isa, x, w, eps, out);
    }
    let got = remote(Call::RmsNorm {
        x: bytes(x),
        w: bytes(w),
        eps,
        out: bytes(out),
    });
    fill(out, got);
}

/// [`ops::rope`], here or remotely.
pub fn rope(isa: Isa, style: RopeStyle, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    if !routed(isa) {
        return ops::rope(isa, style, x, head_dim, cos, sin);
    }
    let got = remote(Call::Rope {
        neox: style == RopeStyle::NeoxHalves,
        head_dim,
        x: bytes(x),
        cos: bytes(cos),
        sin: bytes(sin),
    });
    fill(x, got);
}

/// [`ops::swiglu`], here or remotely.
pub fn swiglu(isa: Isa, gate: &[f32], up: &[f32], out: &mut [f32]) {
    if !routed(isa) {
        return ops::swiglu(isa, gate, up, out);
    }
    let got = remote(Call::Swiglu {
        gate: bytes(gate),
        up: bytes(up),
        out: bytes(out),
    });
    fill(out, got);
}

/// [`ops::softmax`], here or remotely.
pub fn softmax(isa: Isa, x: &mut [f32]) {
    if !routed(isa) {
        return ops::softmax(isa, x);
    }
    let got = remote(Call::Softmax { x: bytes(x) });
    fill(x, got);
}

/// [`ops::residual_add`], here or remotely.
pub fn residual_add(isa: Isa, y: &mut [f32], x: &[f32]) {
    if !routed(isa) {
        return ops::residual_add(isa, y, x);
    }
    let got = remote(Call::ResidualAdd {
        y: bytes(y),
        x: bytes(x),
    });
    fill(y, got);
}

/// [`ops::exp_in_place`], here or remotely.
pub fn exp_in_place(isa: Isa, x: &mut [f32]) {
    if !routed(isa) {
        return ops::exp_in_place(isa, x);
    }
    let got = remote(Call::Exp { x: bytes(x) });
    fill(x, got);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call survives the frame encoding, and executing it gives what the direct call gives.
    #[test]
    fn calls_round_trip_and_execute_like_the_direct_call() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let call = Call::Softmax { x: bytes(&x) };
        let mut wire = Vec::new();
        write_frame(&mut wire, &call).unwrap();
        let back: Call = read_frame(&mut wire.as_slice()).unwrap().unwrap();
        let got = execute(Isa::Scalar, &back).unwrap();
        let mut want = x.clone();
        ops::softmax(Isa::Scalar, &mut want);
        assert_eq!(values::<f32>(&got).unwrap(), want);
        assert!(read_frame::<Call>(&mut [].as_slice()).unwrap().is_none());
    }

    #[test]
    fn a_malformed_call_is_an_error_not_a_panic() {
        let call = Call::Matmul {
            kernel: Kernel::Softmax,
            design: Design::F32,
            dims: [1, 32, 1, 1],
            x: ByteBuf::new(),
            w: ByteBuf::new(),
            y: ByteBuf::new(),
        };
        assert!(execute(Isa::Scalar, &call).is_err());
        let odd = Call::Exp {
            x: ByteBuf::from(vec![0u8; 6]),
        };
        assert!(execute(Isa::Scalar, &odd).is_err());
    }

    #[test]
    fn without_a_server_calls_run_here() {
        let mut y = vec![1.0f32, 2.0];
        residual_add(Isa::Scalar, &mut y, &[0.5, 0.25]);
        assert_eq!(y, [1.5, 2.25]);
        assert!(!neon_is_emulated() || cfg!(target_arch = "aarch64"));
    }
}
