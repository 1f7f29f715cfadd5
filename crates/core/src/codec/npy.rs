//! NumPy's `.npy` format (version 1.0 and 2.0), written and read by hand: what pythae, Keras
//! and PyTorch users keep arrays in. Written: little-endian `float32` arrays (`<f4`). Read:
//! `uint8`, `float32`, `float64` and integer arrays of any shape in C order, checked against
//! the file's length before anything is allocated for them.

const MAGIC: &[u8] = b"\x93NUMPY";

/// A `.npy` file of `float32` values of `shape`, C order.
pub fn write_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic, version, header length and header padded with spaces to a multiple of 64, ending
    // in a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The element types [`read`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `|u1`.
    U8,
    /// `<f4`.
    F32,
    /// `<f8`.
    F64,
    /// A little-endian signed or unsigned integer of this many bytes (`<i2`, `<u4`, `<i8`...).
    Int { bytes: usize, signed: bool },
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::Int { bytes, .. } => bytes,
        }
    }
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The element type in the file.
    pub dtype: Dtype,
    /// The shape.
    pub shape: Vec<usize>,
    /// The raw little-endian data, `shape.product() * dtype size` bytes.
    pub data: Vec<u8>,
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a float.
    pub fn get(&self, i: usize) -> f64 {
        let size = self.dtype.size();
        let b = &self.data[i * size..(i + 1) * size];
        match self.dtype {
            Dtype::U8 => f64::from(b[0]),
            Dtype::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::F64 => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            Dtype::Int { bytes, signed } => {
                let mut raw = [0u8; 8];
                raw[..bytes].copy_from_slice(b);
                if signed && b[bytes - 1] & 0x80 != 0 {
                    raw[bytes..].fill(0xff);
                }
                match signed {
                    true => i64::from_le_bytes(raw) as f64,
                    false => u64::from_le_bytes(raw) as f64,
                }
            }
        }
    }
}

/// Parses a `.npy` file; the error says what is wrong (the caller names the file).
pub fn read(bytes: &[u8]) -> Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or("the header runs past the end of the file")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let field = |name: &str| -> Result<&str, String> {
        let key = format!("'{name}':");
        let at = header
            .find(&key)
            .ok_or_else(|| format!("the header has no {name}"))?;
        Ok(header[at + key.len()..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("the header's descr is not a string")?;
    let dtype = match descr {
        "|u1" | "<u1" | "u1" | "|b1" => Dtype::U8,
        "<f4" => Dtype::F32,
        "<f8" => Dtype::F64,
        d if d.len() == 3
            && (d.starts_with("<i") || d.starts_with("<u") || d.starts_with("|i")) =>
        {
            let bytes: usize = d[2..]
                .parse()
                .map_err(|_| format!("unsupported dtype {d}"))?;
            if !matches!(bytes, 1 | 2 | 4 | 8) {
                return Err(format!("unsupported dtype {d}"));
            }
            Dtype::Int {
                bytes,
                signed: d.as_bytes()[1] == b'i',
            }
        }
        d => {
            return Err(format!(
                "unsupported dtype {d} (uint8, float32, float64 or little-endian integers)"
            ));
        }
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered arrays are not supported (save with C order)".into());
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("the header's shape is not a tuple")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?} in the shape"))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the shape's size overflows")?;
    let need = count
        .checked_mul(dtype.size())
        .ok_or("the shape's size overflows")?;
    let data = &bytes[start + header_len..];
    if data.len() < need {
        return Err(format!(
            "the shape {shape:?} needs {need} bytes of data but the file holds {}",
            data.len()
        ));
    }
    Ok(Array {
        dtype,
        shape,
        data: data[..need].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        let bytes = write_f32(&[3, 4], &values);
        assert_eq!(
            (bytes.len() - values.len() * 4) % 64,
            0,
            "header aligned to 64"
        );
        let a = read(&bytes).unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (Dtype::F32, vec![3, 4]));
        assert!((0..12).all(|i| a.get(i) as f32 == values[i]));
        let one = read(&write_f32(&[5], &[1.0; 5])).unwrap();
        assert_eq!(one.shape, vec![5]);
    }

    /// A version 1.0 file as numpy 1.x writes it: the header padded to 128 bytes in all.
    fn numpy_file(descr: &str, shape: &str, fortran: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        header.push_str(&" ".repeat(128 - 10 - header.len() - 1));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_numpys_own_bytes_and_refuses_damage() {
        // np.save(f, np.array([[1, 2], [3, 250]], dtype=np.uint8)).
        let u8s = numpy_file("|u1", "(2, 2)", "False", &[1, 2, 3, 250]);
        let a = read(&u8s).unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (Dtype::U8, vec![2, 2]));
        assert_eq!(a.get(3), 250.0);
        let mut data = 7i64.to_le_bytes().to_vec();
        data.extend((-3i64).to_le_bytes());
        let b = read(&numpy_file("<i8", "(2,)", "False", &data)).unwrap();
        assert_eq!((b.get(0), b.get(1)), (7.0, -3.0));

        assert!(read(b"not numpy at all").unwrap_err().contains("magic"));
        assert!(
            read(&u8s[..u8s.len() - 1])
                .unwrap_err()
                .contains("needs 4 bytes")
        );
        let huge = numpy_file("|u1", "(99999999999, 99999999999)", "False", &[]);
        assert!(read(&huge).unwrap_err().contains("overflows"));
        let fortran = numpy_file("|u1", "(2, 2)", "True", &[1, 2, 3, 4]);
        assert!(read(&fortran).unwrap_err().contains("Fortran"));
        let strings = numpy_file("<U3", "(2,)", "False", &[0; 24]);
        assert!(read(&strings).unwrap_err().contains("unsupported dtype"));
    }
}
