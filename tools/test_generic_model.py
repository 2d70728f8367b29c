#!/usr/bin/env python3
"""Self-checks of tools/generic_model.py (about 10 s on one thread):

  python tools/test_generic_model.py

1. decoder-only rmsnorm + rope + GQA + swiglu, no bias, untied == Hugging Face
   LlamaForCausalLM with the same weights (checks the RoPE layout, RMSNorm and GQA grouping);
2. encoder-only layernorm pre/post-norm relu/gelu == torch.nn.TransformerEncoderLayer;
3. padding: every row of a right-padded batch equals the same input run alone
   (attention, causal mask, mean pooling), for each kind;
4. export() writes exactly the expected tensor names and load() reads them back.
"""
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generic_model as gm  # noqa: E402


def rand_init(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def check_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = gm.make_config(model_type="decoder-only", d_model=64, nhead=4, num_kv_heads=2,
                         num_layers=2, dim_feedforward=96, norm="rmsnorm", norm_eps=1e-5,
                         activation="swiglu", bias=False, positional="rope", rope_theta=500.0,
                         max_len=32, vocab_size=50, unk_id=0, bos_id=1, eos_id=2)
    m = gm.GenericModel(cfg).eval()
    rand_init(m, 1)
    hc = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                     rope_theta=500.0, max_position_embeddings=32, attention_bias=False,
                     mlp_bias=False, tie_word_embeddings=False, attn_implementation="eager")
    hf = LlamaForCausalLM(hc).eval()
    sd = {"model.embed_tokens.weight": m.embed.weight, "model.norm.weight": m.norm.weight,
          "lm_head.weight": m.lm_head.weight}
    for l, layer in enumerate(m.layers):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = layer.attn_norm.weight
        sd[p + "post_attention_layernorm.weight"] = layer.ffn_norm.weight
        for a in "qkvo":
            sd[p + f"self_attn.{a}_proj.weight"] = getattr(layer.attn, a).weight
        sd[p + "mlp.gate_proj.weight"] = layer.ffn.gate.weight
        sd[p + "mlp.up_proj.weight"] = layer.ffn.up.weight
        sd[p + "mlp.down_proj.weight"] = layer.ffn.down.weight
    missing, unexpected = hf.load_state_dict({k: v.detach() for k, v in sd.items()}, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    ids = torch.randint(0, 50, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = m(ids)
        b = hf(ids).logits
    err = float((a - b).abs().max())
    print(f"llama: max |ours - HF LlamaForCausalLM| = {err:.2e} (logit std {float(a.std()):.2f})")
    assert err < 1e-4


def check_torch_encoder():
    for norm_first, act in ((True, "gelu"), (False, "relu")):
        cfg = gm.make_config(model_type="encoder-only", d_model=32, nhead=4, num_layers=2,
                             dim_feedforward=48, activation=act, norm_first=norm_first,
                             final_norm=False, positional="none", max_len=16, input="features",
                             n_features=5, n_outputs=3)
        m = gm.GenericModel(cfg).eval()
        rand_init(m, 2)
        layers = [torch.nn.TransformerEncoderLayer(32, 4, 48, dropout=0.0, activation=act,
                                                   norm_first=norm_first, batch_first=True)
                  for _ in range(2)]
        with torch.no_grad():
            for ours, t in zip(m.layers, layers):
                t.self_attn.in_proj_weight.copy_(torch.cat([ours.attn.q.weight, ours.attn.k.weight, ours.attn.v.weight]))
                t.self_attn.in_proj_bias.copy_(torch.cat([ours.attn.q.bias, ours.attn.k.bias, ours.attn.v.bias]))
                t.self_attn.out_proj.weight.copy_(ours.attn.o.weight)
                t.self_attn.out_proj.bias.copy_(ours.attn.o.bias)
                t.linear1.weight.copy_(ours.ffn.up.weight)
                t.linear1.bias.copy_(ours.ffn.up.bias)
                t.linear2.weight.copy_(ours.ffn.down.weight)
                t.linear2.bias.copy_(ours.ffn.down.bias)
                for a, b in ((t.norm1, ours.attn_norm), (t.norm2, ours.ffn_norm)):
                    a.weight.copy_(b.weight)
                    a.bias.copy_(b.bias)
                t.eval()
            torch.backends.mha.set_fastpath_enabled(False)
            f = torch.randn(3, 16, 5, generator=torch.Generator().manual_seed(3))
            x = m.input_proj(f)
            for t in layers:
                x = t(x)
            err = float((m.hidden(f) - x).abs().max())
        print(f"nn.TransformerEncoderLayer norm_first={norm_first} {act}: max |diff| = {err:.2e}")
        assert err < 1e-4


def check_padding():
    cases = [
        gm.make_config(model_type="decoder-only", d_model=32, nhead=4, num_kv_heads=1, num_layers=2,
                       dim_feedforward=40, activation="gelu_tanh", positional="sinusoidal",
                       max_len=20, vocab_size=30, unk_id=0, bos_id=1, eos_id=2),
        gm.make_config(model_type="encoder-only", d_model=32, nhead=4, num_kv_heads=2, num_layers=2,
                       dim_feedforward=40, activation="gelu", positional="rope", max_len=20,
                       input="features", n_features=6, pooling="mean", n_outputs=4),
        gm.make_config(model_type="encoder-only", d_model=32, nhead=2, num_layers=1,
                       dim_feedforward=40, activation="relu", norm="rmsnorm", norm_first=False,
                       positional="learned", max_len=20, vocab_size=30, unk_id=0, bos_id=1,
                       eos_id=2, pooling="first", head="regression", n_outputs=3),
    ]
    g = torch.Generator().manual_seed(4)
    for cfg in cases:
        m = gm.GenericModel(cfg).eval()
        rand_init(m, 5)
        lens = torch.tensor([20, 7, 1, 13])
        if m.tokens:
            inp = torch.randint(0, 30, (4, 20), generator=g)
        else:
            inp = torch.randn(4, 20, 6, generator=g)
        with torch.no_grad():
            batch = m(inp, lens)
            hb = m.hidden(inp, lens)
            err = 0.0
            for i, n in enumerate(lens.tolist()):
                one = m(inp[i: i + 1, :n])[0]
                h1 = m.hidden(inp[i: i + 1, :n])[0]
                b = batch[i, :n] if m.decoder else batch[i]
                err = max(err, float((b - one).abs().max()), float((hb[i, :n] - h1).abs().max()))
        print(f"padding {cfg['model_type']} {cfg['positional']}: max |batched - alone| = {err:.2e}")
        assert err < 1e-5
        with tempfile.TemporaryDirectory() as d:
            if m.decoder:
                m.add_lm_head_bias()
                with torch.no_grad():
                    m.lm_head_bias.normal_()
            gm.export(m, cfg, d)
            m2, cfg2 = gm.load(d)
            assert cfg2 == cfg
            with torch.no_grad():
                assert torch.equal(m2(inp), m(inp))


if __name__ == "__main__":
    torch.set_num_threads(1)
    check_llama()
    check_torch_encoder()
    check_padding()
    print("ok")
