//! bf16 as the device's float type (burn's `set_default_dtypes`, what
//! `--dtype bf16` sets), on the CPU backend. Its own test binary: the
//! setting is per device and process-wide, fixed before the first tensor.

use apr_model::{Cpu, CpuTrain, HostDecoder, KvCache, Llama, Logits, ModelConfig};
use burn::tensor::{DType, FloatDType, Int, IntDType, Tensor, TensorData};

/// The full forward, the device-tensor cache and a gradient step run in
/// bf16, and compute the f32 function of the same (bf16-rounded) weights
/// to bf16's precision: the host decoder computes that function in f32.
#[test]
fn a_bf16_model_runs_every_path() {
    let dev = Default::default();
    burn::tensor::set_default_dtypes::<Cpu>(&dev, FloatDType::BF16, IntDType::I32).unwrap();
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.num_layers = 2;
    c.max_seq_len = 64;
    let m = Llama::<Cpu>::init(&c, 7, &dev);
    assert_eq!(m.embed.val().dtype(), DType::BF16);
    let ids: Vec<u32> = vec![5, 9, 200, 3, 17, 44];
    let toks = Tensor::<Cpu, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&x| x as i64).collect(), [1, ids.len()]),
        &dev,
    );
    let full = m.forward(toks, None);
    assert_eq!(full.dtype(), DType::BF16);
    let v = c.vocab_size;
    let last: Vec<f32> = full
        .slice([0..1, ids.len() - 1..ids.len(), 0..v])
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap();
    // f32 arithmetic on the same weights.
    let mut host = HostDecoder::new(&m).unwrap();
    let mut hc = KvCache::<Cpu>::on_host(&c, 1, 64);
    let want = host
        .forward_last(&mut hc, &[(0, &ids[..])])
        .unwrap()
        .remove(0);
    let scale = want.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    let worst = last
        .iter()
        .zip(&want)
        .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    eprintln!("bf16 full forward vs f32: max |diff| {worst} (logits up to {scale})");
    assert!(worst < 0.05 * scale.max(1.0), "{worst} vs scale {scale}");
    // The device-tensor cache, in bf16.
    let mut dc = KvCache::<Cpu>::on_device(&c, 1, 64, &dev);
    let Logits::Last(l) = m.forward_rows(&mut dc, &[(0, &ids[..])], false).unwrap() else {
        unreachable!()
    };
    let cached: Vec<f32> = l.into_data().convert::<f32>().to_vec().unwrap();
    let worst = cached
        .iter()
        .zip(&want)
        .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(
        worst < 0.05 * scale.max(1.0),
        "cached: {worst} vs scale {scale}"
    );
    // A gradient through the bf16 model.
    let t = Llama::<CpuTrain>::init(&c, 7, &dev);
    let toks = Tensor::<CpuTrain, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&x| x as i64).collect(), [1, ids.len()]),
        &dev,
    );
    let loss = t.forward(toks, None).powi_scalar(2).mean();
    let grads = loss.backward();
    let g = t.embed.grad(&grads).unwrap();
    assert_eq!(g.dtype(), DType::BF16);
    let g: Vec<f32> = g.into_data().convert::<f32>().to_vec().unwrap();
    assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|&x| x != 0.0));
}
