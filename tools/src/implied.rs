//! What the weights say about `config.json`: the fields that tensor shapes determine
//! ([`ShapeFields`]), read off `model.safetensors`'s header, so that a config that disagrees
//! with its weights is told which field is wrong and what the weights imply. (`nhead` leaves no trace in the shapes: the f32
//! check finds it, [`crate::check`].)

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use safetensors::SafeTensors;

/// The fields of `config.json` that tensor shapes determine, as the config gives them.
pub struct ShapeFields {
    pub d_model: usize,
    pub dim_feedforward: usize,
    pub vocab_size: usize,
    pub num_encoder_layers: usize,
    pub num_decoder_layers: usize,
    pub tie_embeddings: bool,
}

/// One piece of evidence: `tensor`, of `shape`, says the field is `value`.
struct Evidence<'a> {
    value: usize,
    tensor: &'a str,
    shape: &'a [usize],
}

/// Every value the tensors give each field, by field name.
#[derive(Default)]
struct Implied<'a> {
    fields: BTreeMap<&'static str, Vec<Evidence<'a>>>,
}

impl<'a> Implied<'a> {
    fn say(&mut self, field: &'static str, value: usize, tensor: &'a str, shape: &'a [usize]) {
        self.fields.entry(field).or_default().push(Evidence { value, tensor, shape });
    }

    /// The value every tensor agrees on, if they all agree.
    fn unanimous(&self, field: &str) -> Option<&Evidence<'a>> {
        let all = self.fields.get(field)?;
        let first = all.first()?;
        all.iter().all(|e| e.value == first.value).then_some(first)
    }

    /// The largest value any tensor gives (a layer count: one more than the last layer's index).
    fn most(&self, field: &str) -> Option<&Evidence<'a>> {
        self.fields.get(field)?.iter().max_by_key(|e| e.value)
    }
}

/// Read the evidence of one tensor (PyTorch's `nn.Transformer` names, DESIGN §2).
fn read<'a>(im: &mut Implied<'a>, name: &'a str, shape: &'a [usize]) {
    let last = name.rsplit('.').next().unwrap_or("");
    let module = name.rsplit_once('.').map(|(m, _)| m).unwrap_or("");
    let module_last = module.rsplit('.').next().unwrap_or("");
    for (stack, field) in [("transformer.encoder.layers.", "num_encoder_layers"), ("transformer.decoder.layers.", "num_decoder_layers")] {
        if let Some(index) = name.strip_prefix(stack).and_then(|r| r.split('.').next()).and_then(|i| i.parse::<usize>().ok()) {
            im.say(field, index + 1, name, shape);
        }
    }
    match (module_last, last, shape) {
        (_, "in_proj_weight", &[three_d, d]) => {
            im.say("d_model", d, name, shape);
            if three_d % 3 == 0 {
                im.say("d_model", three_d / 3, name, shape);
            }
        }
        (_, "in_proj_bias", &[three_d]) if three_d % 3 == 0 => im.say("d_model", three_d / 3, name, shape),
        ("out_proj", "weight", &[d, d2]) => {
            im.say("d_model", d, name, shape);
            im.say("d_model", d2, name, shape);
        }
        ("out_proj" | "linear2", "bias", &[d]) => im.say("d_model", d, name, shape),
        ("linear1", "weight", &[f, d]) => {
            im.say("dim_feedforward", f, name, shape);
            im.say("d_model", d, name, shape);
        }
        ("linear1", "bias", &[f]) => im.say("dim_feedforward", f, name, shape),
        ("linear2", "weight", &[d, f]) => {
            im.say("d_model", d, name, shape);
            im.say("dim_feedforward", f, name, shape);
        }
        (m, "weight" | "bias", &[d]) if m.starts_with("norm") => im.say("d_model", d, name, shape),
        ("embedding" | "src_embedding" | "tgt_embedding" | "generator", "weight", &[v, d]) => {
            im.say("vocab_size", v, name, shape);
            im.say("d_model", d, name, shape);
        }
        ("generator", "bias", &[v]) => im.say("vocab_size", v, name, shape),
        _ => {}
    }
}

/// Fail, naming the field, when the tensors of `st` agree on a value of a config field that
/// `c` contradicts. Tensors that disagree among themselves prove nothing here: the check of
/// each tensor against the config names the odd one later.
pub fn check(c: &ShapeFields, st: &SafeTensors<'_>, cfg_path: &Path, st_path: &Path) -> Result<()> {
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut im = Implied::default();
    for (name, view) in &tensors {
        read(&mut im, name, view.shape());
    }
    let widths = [("d_model", c.d_model), ("dim_feedforward", c.dim_feedforward), ("vocab_size", c.vocab_size)].map(|(f, v)| (f, v, im.unanimous(f)));
    let layers = [("num_encoder_layers", c.num_encoder_layers), ("num_decoder_layers", c.num_decoder_layers)].map(|(f, v)| (f, v, im.most(f)));
    for (field, configured, implied) in widths.into_iter().chain(layers) {
        if let Some(e) = implied {
            if e.value != configured {
                bail!(
                    "{}: field `{field}`: {configured}, but the weights imply {} ({}: `{}` has shape {:?})",
                    cfg_path.display(),
                    e.value,
                    st_path.display(),
                    e.tensor,
                    e.shape
                );
            }
        }
    }
    let has = |n: &str| tensors.iter().any(|(name, _)| name == n);
    let tied = match (has("embedding.weight"), has("src_embedding.weight")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    if let Some(tied) = tied.filter(|&t| t != c.tie_embeddings) {
        let (present, absent) = if tied { ("embedding.weight", "src_embedding.weight") } else { ("src_embedding.weight", "embedding.weight") };
        bail!(
            "{}: field `tie_embeddings`: {}, but the weights imply {tied} ({} has `{present}` and no `{absent}`)",
            cfg_path.display(),
            c.tie_embeddings,
            st_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one tensor says: (field, value) in the order said.
    fn says(name: &str, shape: &[usize]) -> Vec<(&'static str, usize)> {
        let mut im = Implied::default();
        read(&mut im, name, shape);
        let mut v: Vec<(&'static str, usize)> = im.fields.iter().flat_map(|(f, es)| es.iter().map(move |e| (*f, e.value))).collect();
        v.sort();
        v
    }

    #[test]
    fn each_tensor_name_says_its_fields() {
        let enc = "transformer.encoder.layers.3.";
        assert_eq!(says(&format!("{enc}self_attn.in_proj_weight"), &[96, 32]), [("d_model", 32), ("d_model", 32), ("num_encoder_layers", 4)]);
        // a first dimension that is not 3 × d says nothing of d_model by itself
        assert_eq!(says(&format!("{enc}self_attn.in_proj_weight"), &[95, 32]), [("d_model", 32), ("num_encoder_layers", 4)]);
        assert_eq!(says(&format!("{enc}self_attn.in_proj_bias"), &[96]), [("d_model", 32), ("num_encoder_layers", 4)]);
        assert_eq!(says(&format!("{enc}self_attn.in_proj_bias"), &[95]), [("num_encoder_layers", 4)]);
        let dec = "transformer.decoder.layers.0.";
        assert_eq!(says(&format!("{dec}multihead_attn.out_proj.weight"), &[32, 33]), [("d_model", 32), ("d_model", 33), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}multihead_attn.out_proj.bias"), &[32]), [("d_model", 32), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}linear1.weight"), &[64, 32]), [("d_model", 32), ("dim_feedforward", 64), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}linear1.bias"), &[64]), [("dim_feedforward", 64), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}linear2.weight"), &[32, 64]), [("d_model", 32), ("dim_feedforward", 64), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}linear2.bias"), &[32]), [("d_model", 32), ("num_decoder_layers", 1)]);
        assert_eq!(says(&format!("{dec}norm3.weight"), &[32]), [("d_model", 32), ("num_decoder_layers", 1)]);
        assert_eq!(says("transformer.encoder.norm.bias", &[32]), [("d_model", 32)]);
        for t in ["embedding.weight", "src_embedding.weight", "tgt_embedding.weight", "generator.weight"] {
            assert_eq!(says(t, &[800, 32]), [("d_model", 32), ("vocab_size", 800)], "{t}");
        }
        assert_eq!(says("generator.bias", &[800]), [("vocab_size", 800)]);
        // other names and shapes say nothing
        assert!(says("generator.weight", &[800]).is_empty());
        assert!(says("something.else", &[800, 32]).is_empty());
    }

    #[test]
    fn agreement_and_the_largest_layer() {
        let mut im = Implied::default();
        im.say("d_model", 32, "a", &[32]);
        im.say("d_model", 32, "b", &[32]);
        im.say("num_encoder_layers", 2, "c", &[]);
        im.say("num_encoder_layers", 5, "d", &[]);
        im.say("num_encoder_layers", 3, "e", &[]);
        assert_eq!(im.unanimous("d_model").map(|e| (e.value, e.tensor)), Some((32, "a")));
        assert_eq!(im.most("num_encoder_layers").map(|e| (e.value, e.tensor)), Some((5, "d")));
        assert!(im.unanimous("num_encoder_layers").is_none() && im.unanimous("vocab_size").is_none());
    }
}
