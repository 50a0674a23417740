//! `harness run`: generate text with a GGUF model. Echoes the prompt, streams the generated
//! text to stdout as it comes, stops at an end-of-generation token or after `-n` tokens, and
//! ends with one line on stderr: load time, prompt tokens and tok/s, generated tokens and tok/s,
//! peak RSS.

use anyhow::{anyhow, bail, Context, Result};
use kernels::attention::KvFormat;
use kernels::gguf::GgufFile;
use kernels::model::{Design, Model, Sampler, SamplerOptions, Session, SessionOptions};
use kernels::tokenizer::{Tokenizer, VocabKind};
use kernels::Isa;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// GGUF model file (Llama architecture).
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set reaching this probability (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty over the last `--repeat-last-n` tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Seed of the sampler: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context length (positions in the KV cache); default min(trained context, 4096).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Most prompt tokens per prefill step.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Apply the file's chat template (ChatML, Zephyr or Llama-2) to the prompt.
    #[arg(long)]
    pub chat: bool,
    /// ISA of the kernels: scalar, avx2, avx512, neon (default: the best this CPU runs).
    #[arg(long)]
    pub isa: Option<String>,
    /// Matmul design: q8 (activations quantized to 8 bits, the default) or f32.
    #[arg(long, default_value = "q8")]
    pub design: String,
    /// KV cache element: f16 (default) or f32.
    #[arg(long, default_value = "f16")]
    pub kv: String,
    /// Huge pages (2 MiB, advised) for the weights copied at load: `on` (default) for faster
    /// decode, `off` for a faster first load on a VM whose host has not yet backed fresh memory.
    #[arg(long, value_enum, default_value_t = HugePages::On)]
    pub huge_pages: HugePages,
    /// Bytes ahead of their reads at which the x86 decode kernels prefetch weights (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = kernels::mem::DEFAULT_DECODE_PREFETCH, value_parser = parse_prefetch)]
    pub prefetch: usize,
    /// Do not echo the prompt.
    #[arg(long)]
    pub no_echo: bool,
}

/// What a run produced, for tests.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    pub prompt_tokens: Vec<u32>,
    pub generated: Vec<u32>,
    pub text: Vec<u8>,
}

/// Threads to use by default: the physical cores. `available_parallelism` counts logical CPUs
/// (and honours affinity masks); on Linux we divide by the SMT siblings of cpu0 when sysfs says,
/// since two threads on one core share its matmul units and gain little.
pub fn default_threads() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let smt = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
        .ok()
        .map(|s| siblings_count(s.trim()))
        .unwrap_or(1)
        .max(1);
    (logical / smt).clamp(1, kernels::model::split::MAX_PARTS)
}

/// Counts the CPUs in a sysfs list such as `0,8` or `0-1`.
fn siblings_count(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// The chat formats `--chat` knows, detected from `tokenizer.chat_template`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    ChatMl,
    Zephyr,
    Llama2,
}

/// Recognises a template by its characteristic markers.
pub fn detect_chat_format(template: &str) -> Result<ChatFormat> {
    if template.contains("<|im_start|>") {
        Ok(ChatFormat::ChatMl)
    } else if template.contains("<|user|>") && template.contains("<|assistant|>") {
        Ok(ChatFormat::Zephyr)
    } else if template.contains("[INST]") {
        Ok(ChatFormat::Llama2)
    } else {
        let head: String = template.chars().take(80).collect();
        bail!(
            "--chat: the file's chat template is not one of ChatML, Zephyr or Llama-2; it begins {head:?}"
        )
    }
}

/// The prompt for one user turn in `format`. ChatML templates that insert a default system
/// message (SmolLM2's does) get it here too.
pub fn apply_chat_format(format: ChatFormat, template: &str, user: &str) -> String {
    match format {
        ChatFormat::ChatMl => {
            let marker = "<|im_start|>system\\n";
            let marker_raw = "<|im_start|>system\n";
            let system = [marker, marker_raw].iter().find_map(|m| {
                let at = template.find(m)? + m.len();
                let end = template[at..].find("<|im_end|>")?;
                let text = &template[at..at + end];
                // A system turn filled from the messages is not a default one.
                (!text.contains("{{") && !text.contains("{%")).then(|| text.replace("\\n", "\n"))
            });
            let mut s = String::new();
            if let Some(system) = system {
                s.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
            }
            s.push_str(&format!(
                "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ));
            s
        }
        ChatFormat::Zephyr => format!("<|user|>\n{user}</s>\n<|assistant|>\n"),
        ChatFormat::Llama2 => format!("[INST] {user} [/INST]"),
    }
}

/// Peak resident set size in bytes (`VmHWM` of /proc/self/status), where Linux reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn one_line_open(path: &std::path::Path) -> Result<GgufFile> {
    GgufFile::open(path).map_err(|e| {
        let msg = e.to_string();
        let p = path.display().to_string();
        if msg.starts_with(&p) {
            anyhow!(msg)
        } else {
            anyhow!("{p}: {msg}")
        }
    })
}

/// `--huge-pages on|off` of the commands that load a model: the process's policy for the
/// weights copied at load ([`kernels::mem::set_huge_pages`]; the trade-off measured is in
/// [`kernels::mem`]). Results are the same either way.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugePages {
    On,
    Off,
}

impl HugePages {
    /// Sets the process's policy; call before `Model::load`.
    pub fn apply(self) {
        kernels::mem::set_huge_pages(self == HugePages::On);
    }

    /// `on` / `off`: the process's policy as set now, as e2e rows record it.
    pub fn current() -> &'static str {
        if kernels::mem::huge_pages() {
            "on"
        } else {
            "off"
        }
    }
}

/// `--prefetch BYTES` of the commands that decode: how far ahead of their reads the x86 decode
/// kernels ask for weight lines ([`kernels::mem::set_decode_prefetch`]; 0 turns it off; what it
/// measured is at [`kernels::mem::DEFAULT_DECODE_PREFETCH`]). Results are the same whatever it is.
pub fn parse_prefetch(s: &str) -> std::result::Result<usize, String> {
    let bytes: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    if bytes > MAX_PREFETCH {
        return Err(format!(
            "{bytes} bytes is more than the {MAX_PREFETCH} allowed"
        ));
    }
    Ok(bytes)
}

/// The farthest `--prefetch` distance: far beyond any useful one (a few KiB), near enough that a
/// typo is caught.
pub const MAX_PREFETCH: usize = 1 << 20;

/// The `--isa` (default: the best this CPU runs), `--design` and `--kv` flags of the commands
/// that run a model, checked: one-line errors for a name that is not one or an ISA this CPU lacks.
pub fn session_flags(isa: Option<&str>, design: &str, kv: &str) -> Result<(Isa, Design, KvFormat)> {
    let isa = match isa {
        None => Isa::best(),
        Some(name) => {
            let isa = Isa::from_name(name)
                .ok_or_else(|| anyhow!("--isa {name}: not an ISA (scalar, avx2, avx512, neon)"))?;
            if let Some(reason) = isa.unavailable_reason() {
                bail!("--isa {name} cannot run here: {reason}");
            }
            isa
        }
    };
    let design = Design::from_name(design)
        .ok_or_else(|| anyhow!("--design {design}: not a design (q8, f32)"))?;
    let kv = match kv {
        "f16" => KvFormat::F16,
        "f32" => KvFormat::F32,
        other => bail!("--kv {other}: not a KV cache format (f16, f32)"),
    };
    Ok((isa, design, kv))
}

/// Runs the command, writing the text to `out` and the summary line to stderr.
pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<RunOutput> {
    let (isa, design, kv) = session_flags(args.isa.as_deref(), &args.design, &args.kv)?;
    let threads = args.threads.unwrap_or_else(default_threads);
    if threads == 0 || threads > kernels::model::split::MAX_PARTS {
        bail!(
            "--threads {threads}: must be 1 to {}",
            kernels::model::split::MAX_PARTS
        );
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let sampler_opts = SamplerOptions {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed: args.seed,
    };
    sampler_opts.check().map_err(|e| anyhow!("sampling: {e}"))?;

    let load_start = Instant::now();
    let file = one_line_open(&args.model)?;
    let g = file.gguf();
    let name = args.model.display().to_string();
    args.huge_pages.apply();
    kernels::mem::set_decode_prefetch(args.prefetch);
    let model = Model::load(&file, isa, design, threads).with_context(|| name.clone())?;
    let tok = Tokenizer::from_gguf(g).with_context(|| name.clone())?;
    let c = &model.config;
    if tok.n_tokens() > c.n_vocab {
        bail!(
            "{name}: the tokenizer has {} tokens but token_embd only {} rows",
            tok.n_tokens(),
            c.n_vocab
        );
    }
    let n_ctx = args.ctx.unwrap_or(c.n_ctx_train.min(4096));
    if n_ctx == 0 {
        bail!("--ctx must be at least 1");
    }

    let prompt = if args.chat {
        let template = match g.get("tokenizer.chat_template") {
            None => bail!("--chat: {name} has no tokenizer.chat_template"),
            Some(_) => g
                .get_str("tokenizer.chat_template")
                .with_context(|| name.clone())?,
        };
        let format = detect_chat_format(template)?;
        apply_chat_format(format, template, &args.prompt)
    } else {
        args.prompt.clone()
    };
    let prompt_tokens = tok.encode(&prompt, true, args.chat)?;
    if prompt_tokens.is_empty() {
        bail!("the prompt is empty (and the file adds no BOS token)");
    }
    if prompt_tokens.len() >= n_ctx {
        bail!(
            "the prompt is {} tokens, which does not fit --ctx {n_ctx} (at least one position must stay free to generate)",
            prompt_tokens.len()
        );
    }
    let mut session = Session::new(
        &model,
        SessionOptions {
            isa,
            design,
            threads,
            n_ctx,
            n_batch: args.batch,
            kv,
        },
    )?;
    let mut sampler = Sampler::new(sampler_opts, c.n_vocab);
    let load_s = load_start.elapsed().as_secs_f64();

    let stops = stop_tokens(&tok);
    if !args.no_echo {
        out.write_all(args.prompt.as_bytes())?;
        out.flush()?;
    }
    let prefill_start = Instant::now();
    let mut logits = session.prefill(&prompt_tokens)?;
    let prefill_s = prefill_start.elapsed().as_secs_f64();
    for &t in &prompt_tokens {
        sampler.accept(t);
    }

    let gen_start = Instant::now();
    let mut generated = Vec::with_capacity(args.n_predict);
    let mut text = Vec::new();
    let mut stopped_by_ctx = false;
    while generated.len() < args.n_predict {
        let next = sampler.sample(logits);
        if stops.contains(&next) {
            break;
        }
        generated.push(next);
        sampler.accept(next);
        let piece = tok.token_to_piece(next, false)?;
        text.extend_from_slice(piece);
        out.write_all(piece)?;
        out.flush()?;
        if generated.len() == args.n_predict {
            break;
        }
        if session.pos() >= n_ctx {
            stopped_by_ctx = true;
            break;
        }
        logits = session.decode(next)?;
    }
    let gen_s = gen_start.elapsed().as_secs_f64();
    writeln!(out)?;
    out.flush()?;
    if stopped_by_ctx {
        eprintln!("run: stopped: the context of {n_ctx} positions is full");
    }
    let rss = peak_rss_bytes().map_or("unknown".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    });
    // Decode tok/s counts the forward passes, one per generated token except the last.
    let decode_steps = generated.len().saturating_sub(1);
    eprintln!(
        "run: load {:.3} s | prompt {} tokens, {:.1} tok/s | generated {} tokens, {:.1} tok/s | peak RSS {rss} | {} threads, {isa}, design {}, kv {}",
        load_s,
        prompt_tokens.len(),
        prompt_tokens.len() as f64 / prefill_s.max(1e-9),
        generated.len(),
        decode_steps as f64 / gen_s.max(1e-9),
        threads,
        design.name(),
        args.kv,
    );
    Ok(RunOutput {
        prompt_tokens,
        generated,
        text,
    })
}

/// End-of-generation tokens: EOS, EOT, and the turn-end tokens of the common chat formats.
fn stop_tokens(tok: &Tokenizer) -> Vec<u32> {
    let v = tok.vocab();
    let mut stops: Vec<u32> = v.eos.into_iter().collect();
    for text in [
        "<|im_end|>",
        "<|eot_id|>",
        "<|end_of_text|>",
        "<|endoftext|>",
        "</s>",
    ] {
        if let Some(id) = tok.token_id(text) {
            if matches!(v.kind, VocabKind::BytePairBpe(_)) || text == "</s>" {
                stops.push(id);
            }
        }
    }
    stops.sort_unstable();
    stops.dedup();
    stops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_formats_are_detected_by_their_markers() {
        let smol = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
        assert_eq!(detect_chat_format(smol).unwrap(), ChatFormat::ChatMl);
        assert_eq!(
            apply_chat_format(ChatFormat::ChatMl, smol, "Hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let zephyr = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endfor %}";
        assert_eq!(detect_chat_format(zephyr).unwrap(), ChatFormat::Zephyr);
        assert_eq!(
            detect_chat_format("{{ bos_token }}[INST] {{ m }} [/INST]").unwrap(),
            ChatFormat::Llama2
        );
        let err = detect_chat_format("<start_of_turn>user").unwrap_err();
        assert!(err.to_string().contains("<start_of_turn>user"), "{err}");
    }

    #[test]
    fn sibling_lists() {
        assert_eq!(siblings_count("0"), 1);
        assert_eq!(siblings_count("0,8"), 2);
        assert_eq!(siblings_count("0-1"), 2);
        assert!(default_threads() >= 1);
    }
}
