//! A model's weights as safetensors, named and laid out as PyTorch names and lays out its own:
//! every float parameter under its module path (`decoder.layers.0.weight`, `decoder.output.bias`,
//! `encoder.mu.weight`, ...), dense weights transposed to PyTorch's `[out, in]`, convolution
//! weights as they are (burn and PyTorch share `[out, in, kh, kw]` and, for transposed ones,
//! `[in, out, kh, kw]`). `torch.load_state_dict` then takes them by name.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::data::batch::to_vec;
use crate::model::Model;

/// One tensor: its name, shape and values (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// The dotted module path.
    pub name: String,
    /// The shape, PyTorch's layout.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
}

#[derive(Default)]
struct Collect {
    path: Vec<(String, String)>,
    out: Vec<Named>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Enum variants name the family (`Vae`), not a field: left out of the name.
        let parts: Vec<&str> = self
            .path
            .iter()
            .filter(|(_, kind)| !kind.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect();
        let name = parts.join(".");
        let tensor = param.val();
        let dims = tensor.dims().to_vec();
        let mut values = to_vec(tensor.reshape([-1]));
        // Each entry is a field and the type that holds it: a Linear's own weight is the last.
        let in_linear = self
            .path
            .last()
            .is_some_and(|(_, kind)| kind == "Struct:Linear");
        let shape = if in_linear && name.ends_with("weight") && dims.len() == 2 {
            // burn's [in, out] to PyTorch's [out, in].
            let (rows, cols) = (dims[0], dims[1]);
            let mut t = vec![0.0; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
            values = t;
            vec![cols, rows]
        } else {
            dims
        };
        self.out.push(Named {
            name,
            shape,
            values,
        });
    }
}

/// Every float parameter of `model`, named and laid out as PyTorch's.
pub fn tensors(model: &Model) -> Vec<Named> {
    let mut c = Collect::default();
    model.visit(&mut c);
    c.out
}

/// The safetensors file of `tensors` (little-endian F32, names sorted), with `metadata`.
pub fn encode(tensors: &[Named], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut sorted: Vec<&Named> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).unwrap_or_default(),
    );
    let mut offset = 0usize;
    for t in &sorted {
        let end = offset + 4 * t.values.len();
        header.insert(
            t.name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut json = serde_json::Value::Object(header).to_string();
    // The data starts 8-byte aligned.
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    for t in sorted {
        for v in &t.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Reads a safetensors file of F32 tensors back (what [`encode`] writes, or PyTorch's
/// `safetensors.torch.save_file` of float32 tensors).
pub fn decode(bytes: &[u8]) -> Result<Vec<Named>, String> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        .ok_or("shorter than the 8-byte header length")?;
    let json = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or("the header runs past the end of the file")?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| format!("the header is not JSON: {e}"))?;
    let data = &bytes[8 + len..];
    let mut out = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        if entry["dtype"] != "F32" {
            return Err(format!("{name}: dtype {} (F32 only)", entry["dtype"]));
        }
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone())
            .map_err(|_| format!("{name}: bad shape"))?;
        let [a, b]: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone())
            .map_err(|_| format!("{name}: bad data_offsets"))?;
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or(format!("{name}: the shape overflows"))?;
        let raw = data
            .get(a..b)
            .filter(|r| r.len() == 4 * count)
            .ok_or(format!(
                "{name}: data offsets {a}..{b} do not fit the shape or the file"
            ))?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(Named {
            name,
            shape,
            values,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::to_tensor;
    use burn::tensor::Device;

    #[test]
    fn a_decoder_rebuilt_from_the_file_in_pytorch_layout_decodes_like_the_model() {
        let device = Device::flex();
        let vae = crate::model::VaeConfig::new(12)
            .with_hidden(vec![8, 5])
            .init(&device);
        let model = Model::Vae(vae);
        let meta = BTreeMap::from([("family".to_owned(), "vae".to_owned())]);
        let back = decode(&encode(&tensors(&model), &meta)).unwrap();
        let get = |name: &str| {
            back.iter().find(|t| t.name == name).unwrap_or_else(|| {
                panic!(
                    "{name} missing from {:?}",
                    back.iter().map(|t| &t.name).collect::<Vec<_>>()
                )
            })
        };
        // What torch.nn.Linear computes: y = x W^T + b, W of shape [out, in].
        let linear = |x: &[f32], prefix: &str| -> Vec<f32> {
            let (w, b) = (
                get(&format!("{prefix}.weight")),
                get(&format!("{prefix}.bias")),
            );
            assert_eq!(
                w.shape,
                vec![b.values.len(), x.len()],
                "{prefix}: [out, in]"
            );
            (0..w.shape[0])
                .map(|o| {
                    b.values[o]
                        + (0..x.len())
                            .map(|i| w.values[o * x.len() + i] * x[i])
                            .sum::<f32>()
                })
                .collect()
        };
        let relu = |v: Vec<f32>| v.into_iter().map(|x| x.max(0.0)).collect::<Vec<_>>();
        let z = [0.7f32, -0.4];
        let h = relu(linear(&z, "decoder.layers.0"));
        let h = relu(linear(&h, "decoder.layers.1"));
        let out: Vec<f32> = linear(&h, "decoder.output")
            .into_iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        let expected = to_vec(burn::tensor::activation::sigmoid(model.decode(to_tensor(
            z.to_vec(),
            1,
            2,
            &device,
        ))));
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(get("encoder.mu.weight").shape == vec![2, 5]);
        assert!(decode(b"\x05\x00\x00\x00\x00\x00\x00\x00{}").is_err());
    }
}
