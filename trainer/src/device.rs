//! Where training runs: `--device cpu` (the default) or `--device cuda[:N]`.
//!
//! CUDA needs the crate built with `--features cuda` (candle's CUDA kernels,
//! cuBLAS). Only the learner's forward, backward and AdamW move to the GPU;
//! data loading, augmentation and the frozen anchors' embeddings (tract)
//! stay on the CPU, and batches are copied over once per step. On the CPU
//! the conv stem runs as im2col + gemm ([`crate::conv`]); on CUDA it is
//! candle's `conv2d`.

use candle_core::Device;

/// Parses `cpu`, `cuda` or `cuda:N` into a candle device.
pub fn parse(spec: &str) -> anyhow::Result<Device> {
    let spec = spec.trim();
    if spec.eq_ignore_ascii_case("cpu") {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.to_ascii_lowercase().as_str() {
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:") {
            Some(n) => n.parse::<usize>().map_err(|_| {
                anyhow::anyhow!("--device {spec}: the GPU index after `cuda:` must be a number")
            })?,
            None => anyhow::bail!("--device {spec}: expected `cpu`, `cuda` or `cuda:N`"),
        },
    };
    if !cfg!(feature = "cuda") {
        anyhow::bail!(
            "--device {spec}: this edgebind-train was built without CUDA; rebuild with \
             `cargo build --release -p edgebind-trainer --features cuda`"
        );
    }
    Device::new_cuda(ordinal)
        .map_err(|e| anyhow::anyhow!("--device {spec}: cannot open CUDA device {ordinal}: {e}"))
}

/// `cpu` or `cuda:N`, for logs and reports.
pub fn name(dev: &Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_bad_specs_name_the_flag() {
        assert!(parse("cpu").unwrap().is_cpu());
        assert!(parse(" CPU ").unwrap().is_cpu());
        let e = parse("tpu").unwrap_err().to_string();
        assert!(e.contains("--device tpu") && e.contains("cuda:N"), "{e}");
        let e = parse("cuda:x").unwrap_err().to_string();
        assert!(e.contains("must be a number"), "{e}");
        if !cfg!(feature = "cuda") {
            let e = parse("cuda:0").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
