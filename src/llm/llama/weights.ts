/**
 * The weights of a Llama-family model, read from its safetensors files and checked against the
 * shapes `config.json` implies (Hugging Face names; `nn.Linear` weights `[out, in]`).
 * @module
 */
import type { LlamaConfig } from './config';
import type { SafetensorsFolder } from './safetensors';

/** One decoder layer's tensors; biases only where the config has them. @internal */
export interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  oBias?: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  gateBias?: Float32Array;
  upBias?: Float32Array;
  downBias?: Float32Array;
}

/** Every tensor the decoder runs on. @internal */
export interface LlamaWeights {
  /** `[vocab, hidden]`. */
  embed: Float32Array;
  layers: LayerWeights[];
  /** Final RMSNorm `[hidden]`. */
  norm: Float32Array;
  /** `[vocab, hidden]`: the embedding itself when tied. */
  lmHead: Float32Array;
}

/**
 * Reads every tensor the config needs, one at a time, each straight into its float32 array.
 * @throws Error naming the file, the tensor and the expected shape.
 * @internal
 */
export async function loadWeights(st: SafetensorsFolder, c: LlamaConfig): Promise<LlamaWeights> {
  const { hidden: H, intermediate: I, queryHeads: NH, kvHeads: KV, headDim: D, vocabSize: V } = c;
  const read = (name: string, shape: number[]) => st.read(name, shape);
  const embed = await read('model.embed_tokens.weight', [V, H]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    const m = `${p}.mlp`;
    const w: LayerWeights = {
      inputNorm: await read(`${p}.input_layernorm.weight`, [H]),
      q: await read(`${a}.q_proj.weight`, [NH * D, H]),
      k: await read(`${a}.k_proj.weight`, [KV * D, H]),
      v: await read(`${a}.v_proj.weight`, [KV * D, H]),
      o: await read(`${a}.o_proj.weight`, [H, NH * D]),
      postNorm: await read(`${p}.post_attention_layernorm.weight`, [H]),
      gate: await read(`${m}.gate_proj.weight`, [I, H]),
      up: await read(`${m}.up_proj.weight`, [I, H]),
      down: await read(`${m}.down_proj.weight`, [H, I]),
    };
    if (c.qkvBias) {
      w.qBias = await read(`${a}.q_proj.bias`, [NH * D]);
      w.kBias = await read(`${a}.k_proj.bias`, [KV * D]);
      w.vBias = await read(`${a}.v_proj.bias`, [KV * D]);
    }
    if (c.oBias) w.oBias = await read(`${a}.o_proj.bias`, [H]);
    if (c.mlpBias) {
      w.gateBias = await read(`${m}.gate_proj.bias`, [I]);
      w.upBias = await read(`${m}.up_proj.bias`, [I]);
      w.downBias = await read(`${m}.down_proj.bias`, [H]);
    }
    layers.push(w);
  }
  const norm = await read('model.norm.weight', [H]);
  const lmHead = c.tiedEmbeddings ? embed : await read('lm_head.weight', [V, H]);
  return { embed, layers, norm, lmHead };
}
