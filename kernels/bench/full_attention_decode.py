"""Full-attention decode baseline for `nsa bench --decode` (docs/benchmarks.md, "Decode").

One query row per sequence against T_k cached keys, bf16, H_q = 64, d = 128, through PyTorch
SDPA: with enable_gqa=True on the K/V of the H_kv = H_q / G heads, and with K/V expanded to H_q
heads (a model without GQA support). Timed as CUDA-graph replays, as `nsa bench --graph` times a
step: the median of 5 samples of 20 back-to-back replays, ms per replay. Needs a GPU and torch;
not run by CI. Usage: python3 kernels/bench/full_attention_decode.py [T_k]
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def replay_ms(step):
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph):
            step()
    torch.cuda.synchronize()
    samples = []
    for _ in range(5):
        start, stop = torch.cuda.Event(True), torch.cuda.Event(True)
        start.record()
        for _ in range(20):
            graph.replay()
        stop.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(stop) / 20)
    return sorted(samples)[2]


def decode_ms(batch, group, t_k, backend, gqa, h_q=64, d=128):
    h_kv = h_q // group
    q = torch.randn(batch, h_q, 1, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, h_kv, t_k, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(batch, h_kv, t_k, d, device="cuda", dtype=torch.bfloat16)
    if not gqa:
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)

    def step():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)

    return replay_ms(step)


def main():
    t_k = int(sys.argv[1]) if len(sys.argv) > 1 else 65536
    torch.manual_seed(0)
    variants = [
        ("flash-gqa", SDPBackend.FLASH_ATTENTION, True),
        ("cudnn-gqa", SDPBackend.CUDNN_ATTENTION, True),
        ("flash-expanded", SDPBackend.FLASH_ATTENTION, False),
        ("cudnn-expanded", SDPBackend.CUDNN_ATTENTION, False),
    ]
    for batch, group in [(1, 16), (16, 16), (16, 4), (1, 4)]:
        row = []
        for name, backend, gqa in variants:
            try:
                row.append(f"{name} {decode_ms(batch, group, t_k, backend, gqa):.4f}")
            except Exception as e:  # a backend that refuses the shape
                row.append(f"{name} n/a ({type(e).__name__})")
        print(f"full-attention decode B={batch} G={group} T_k={t_k} bf16 d=128 (ms): " + ", ".join(row),
              flush=True)


if __name__ == "__main__":
    main()
