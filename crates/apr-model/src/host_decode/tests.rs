use super::*;
use crate::cache::Logits;
use crate::Cpu;

fn tiny(tied: bool, kv_heads: usize) -> Llama<Cpu> {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.num_layers = 2;
    c.num_kv_heads = kv_heads;
    c.tie_embeddings = tied;
    c.max_seq_len = 64;
    Llama::init(&c, 3, &Default::default())
}

fn burn_logits(m: &Llama<Cpu>, cache: &mut KvCache<Cpu>, feed: &[(usize, &[u32])]) -> Vec<f32> {
    let Logits::Last(l) = m.forward_rows(cache, feed, false).unwrap() else {
        unreachable!()
    };
    l.into_data().into_vec::<f32>().unwrap()
}

/// Prefills of different lengths, then steps with some rows idle.
fn mixed_steps() -> Vec<Vec<(usize, Vec<u32>)>> {
    vec![
        vec![(0, vec![5, 9, 200, 3]), (2, vec![17]), (1, vec![1, 2])],
        vec![(2, vec![44]), (0, vec![1000])],
        vec![(1, vec![7, 8, 9]), (0, vec![12]), (2, vec![1232])],
    ]
}

/// `rows` prompts of different lengths run together in one cache and
/// each alone in its own: each row's logits have the same bits.
fn same_bits_alone_or_batched(
    host: &mut HostDecoder,
    rows: u32,
    cache: impl Fn(usize) -> KvCache<Cpu>,
) {
    let prompts: Vec<Vec<u32>> = (0..rows)
        .map(|r| (0..3 + r).map(|i| i * 31 + r).collect())
        .collect();
    let feed: Vec<(usize, &[u32])> = prompts
        .iter()
        .enumerate()
        .map(|(r, p)| (r, &p[..]))
        .collect();
    let all = host.forward_last(&mut cache(rows as usize), &feed).unwrap();
    for (r, p) in prompts.iter().enumerate() {
        let got = host.forward_last(&mut cache(1), &[(0, &p[..])]).unwrap();
        assert_eq!(got[0], all[r], "row {r}");
    }
}

/// Prefill rows of different lengths, then decode steps with some rows
/// idle: the host path matches burn's cached forward on every step.
#[test]
fn matches_the_burn_forward_step_by_step() {
    for (tied, kv) in [(true, 4), (false, 2)] {
        let m = tiny(tied, kv);
        let mut host = HostDecoder::new(&m).unwrap();
        let dev = Default::default();
        let (mut a, mut b) = (
            KvCache::<Cpu>::new(&m.config, 3, 64, &dev),
            KvCache::<Cpu>::new(&m.config, 3, 64, &dev),
        );
        let mut worst = 0.0f32;
        for step in &mixed_steps() {
            let feed: Vec<(usize, &[u32])> = step.iter().map(|(r, t)| (*r, &t[..])).collect();
            let want = burn_logits(&m, &mut a, &feed);
            let got: Vec<f32> = host.forward_last(&mut b, &feed).unwrap().concat();
            assert_eq!(want.len(), got.len());
            for (w, g) in want.iter().zip(&got) {
                worst = worst.max((w - g).abs());
            }
            assert_eq!(a.lens(), b.lens());
        }
        eprintln!("tied {tied}, kv heads {kv}: max |diff| {worst:e}");
        assert!(
            worst < 1e-4,
            "tied {tied}, kv heads {kv}: max |diff| {worst}"
        );
    }
}

/// A long prefill, then one token at a time past several doublings of
/// the rows' blocks: still the burn forward's logits.
#[test]
fn matches_the_burn_forward_over_long_rows() {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.num_layers = 2;
    let m = Llama::<Cpu>::init(&c, 5, &Default::default());
    let mut host = HostDecoder::new(&m).unwrap();
    let dev = Default::default();
    let (mut a, mut b) = (
        KvCache::<Cpu>::new(&m.config, 2, 400, &dev),
        KvCache::<Cpu>::new(&m.config, 2, 400, &dev),
    );
    let prompt: Vec<u32> = (0..150).map(|i| (i * 37 % 1200) as u32).collect();
    let mut worst = 0.0f32;
    let mut feed_both = |feed: &[(usize, &[u32])]| {
        let want = burn_logits(&m, &mut a, feed);
        let got = host.forward_last(&mut b, feed).unwrap().concat();
        for (w, g) in want.iter().zip(&got) {
            worst = worst.max((w - g).abs());
        }
    };
    feed_both(&[(0, &prompt[..]), (1, &prompt[..7])]);
    for i in 0..120u32 {
        feed_both(&[(0, &[i * 7 % 1233][..]), (1, &[i * 11 % 1233][..])]);
    }
    assert!(worst < 1e-4, "max |diff| {worst}");
}

#[test]
fn a_row_gives_the_same_bits_alone_or_in_a_batch() {
    let m = tiny(true, 4);
    let mut host = HostDecoder::new(&m).unwrap();
    let dev = Default::default();
    same_bits_alone_or_batched(&mut host, 8, |rows| {
        KvCache::<Cpu>::new(&m.config, rows, 64, &dev)
    });
}

/// A bfloat16 cache: the host decoder and burn's forward agree on it,
/// a row gives the same bits alone or in a batch, memory is halved, and
/// the logits stay near those of an f32 cache.
#[test]
fn a_bfloat16_cache_halves_memory_and_stays_close() {
    let m = tiny(false, 2);
    let mut host = HostDecoder::new(&m).unwrap();
    let bf = || KvCache::<Cpu>::on_host_bf16(&m.config, 3, 64).unwrap();
    let (mut a, mut b, mut f) = (bf(), bf(), KvCache::<Cpu>::on_host(&m.config, 3, 64));
    let (mut same, mut near) = (0.0f32, 0.0f32);
    for step in &mixed_steps() {
        let feed: Vec<(usize, &[u32])> = step.iter().map(|(r, t)| (*r, &t[..])).collect();
        let want = burn_logits(&m, &mut a, &feed);
        let got: Vec<f32> = host.forward_last(&mut b, &feed).unwrap().concat();
        let full: Vec<f32> = host.forward_last(&mut f, &feed).unwrap().concat();
        for ((w, g), x) in want.iter().zip(&got).zip(&full) {
            same = same.max((w - g).abs());
            near = near.max((x - g).abs());
        }
    }
    eprintln!("bf16: host vs burn {same:e}, vs an f32 cache {near:e}");
    assert!(same < 1e-4, "host vs burn on a bf16 cache: {same}");
    assert!(near > 0.0 && near < 2e-2, "bf16 vs f32 cache: {near}");
    assert_eq!(2 * b.committed_bytes(), f.committed_bytes());
    assert_eq!(2 * b.bytes(), f.bytes());
    // Batched and one at a time: the same bits.
    same_bits_alone_or_batched(&mut host, 4, |rows| {
        KvCache::<Cpu>::on_host_bf16(&m.config, rows, 64).unwrap()
    });
    // A head width that does not pack is refused.
    let mut c = m.config.clone();
    c.hidden_size = 40;
    c.num_heads = 4;
    c.num_kv_heads = 4;
    assert!(KvCache::<Cpu>::on_host_bf16(&c, 1, 8).is_err());
}

#[test]
fn the_cache_commits_memory_as_rows_fill() {
    let m = tiny(true, 4);
    let mut host = HostDecoder::new(&m).unwrap();
    let mut cache = KvCache::<Cpu>::new(&m.config, 2, 5, &Default::default());
    assert_eq!(cache.committed_bytes(), 0);
    // One position: 2 layers x (keys + values) x 4 heads x 32 x 4 bytes.
    let per = 2 * 2 * 4 * 32 * 4;
    host.forward_last(&mut cache, &[(1, &[3, 4, 5][..])])
        .unwrap();
    assert_eq!(cache.committed_bytes(), 3 * per);
    host.forward_last(&mut cache, &[(1, &[6][..])]).unwrap();
    // Doubled, but never past the capacity of 5.
    assert_eq!(cache.committed_bytes(), 5 * per);
    assert_eq!(cache.bytes(), 2 * 5 * per);
}

#[test]
fn bad_feeds_are_errors() {
    let m = tiny(true, 4);
    let mut host = HostDecoder::new(&m).unwrap();
    let mut cache = KvCache::<Cpu>::new(&m.config, 2, 8, &Default::default());
    assert!(host.forward_last(&mut cache, &[]).is_err());
    assert!(host.forward_last(&mut cache, &[(2, &[1][..])]).is_err());
    assert!(host
        .forward_last(&mut cache, &[(0, &[1][..]), (0, &[2][..])])
        .is_err());
    assert!(host.forward_last(&mut cache, &[(0, &[5000][..])]).is_err());
    assert!(host.forward_last(&mut cache, &[(0, &[1; 9][..])]).is_err());
    let mut c = m.config.clone();
    c.num_layers = 3;
    let mut other = KvCache::<Cpu>::new(&c, 1, 8, &Default::default());
    assert!(host.forward_last(&mut other, &[(0, &[1][..])]).is_err());
    assert_eq!(cache.lens(), &[0, 0]);
}
