//! Data-parallel gradients over several devices of one backend, with
//! burn's own multi-device pieces (no hand-written all-reduce): the model
//! is forked to each device (`Module::fork`), each device computes the
//! gradients of its share of a step's micro-batches on its own thread,
//! and the gradients are moved to the first device
//! (`GradientsParams::to_device`) and summed there by burn's
//! `GradientsAccumulator`, in micro-batch order. The optimiser then steps
//! once on the first device. This is burn-train's `MultiDevice` strategy
//! with `OptimMainDevice`, run inside our own step loop (which clips the
//! global norm, which burn-train's learner does not).
//!
//! Micro-batch `i` of a step runs on device `i % devices`, so the summed
//! gradient is the same sum as on one device: with one device the path is
//! exactly the sequential one, and with several the result differs only
//! by where each micro-batch was computed.

use crate::data::Batch;
use crate::error::{Error, Result};
use apr_model::{AprBackend, Llama};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;

/// The summed loss and the summed gradients (on `model`'s device, which
/// is `devices[0]`) of `micro`, micro-batch `i` computed on device
/// `i % devices.len()` by `loss_of` (a loss to differentiate and its
/// value).
pub(crate) fn micro_batch_grads<B, F>(
    model: &Llama<B>,
    devices: &[B::Device],
    micro: &[Batch],
    loss_of: F,
) -> Result<(f64, GradientsParams)>
where
    B: AutodiffBackend + AprBackend,
    F: Fn(&Llama<B>, &Batch) -> (burn::tensor::Tensor<B, 1>, f64) + Sync,
{
    let n = devices.len().max(1);
    let run = |m: &Llama<B>, i: usize| -> (usize, f64, GradientsParams) {
        let (loss, v) = loss_of(m, &micro[i]);
        (i, v, GradientsParams::from_grads(loss.backward(), m))
    };
    let mut parts: Vec<(usize, f64, GradientsParams)> = Vec::with_capacity(micro.len());
    if n == 1 {
        parts.extend((0..micro.len()).map(|i| run(model, i)));
    } else {
        let results: Vec<std::thread::Result<Vec<_>>> = std::thread::scope(|s| {
            let handles: Vec<_> = devices
                .iter()
                .enumerate()
                .map(|(d, dev)| {
                    let replica = if d == 0 {
                        model.clone()
                    } else {
                        model.clone().fork(dev)
                    };
                    let run = &run;
                    s.spawn(move || {
                        (d..micro.len())
                            .step_by(n)
                            .map(|i| run(&replica, i))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for r in results {
            parts.extend(r.map_err(|_| Error::Config("a data-parallel worker panicked".into()))?);
        }
        parts.sort_by_key(|p| p.0);
    }
    let main = model.device();
    let mut acc = GradientsAccumulator::<Llama<B>>::new();
    let mut sum = 0.0;
    for (_, v, g) in parts {
        sum += v;
        acc.accumulate(model, if n == 1 { g } else { g.to_device(&main, model) });
    }
    Ok((sum, acc.grads()))
}
