//! The CPU backend's f32 tensors as slices: what lets `cpu::math`'s vectorized loops, the matrix
//! product (`cpu::matmul`) and the fused Adam step (`optim`) run on flex's tensors in one pass
//! where flex would take several operations, or compute one float at a time.

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType, Shape};

/// A contiguous f32 tensor of `shape` holding `values`. `FlexTensor::empty` zero-fills its bytes
/// and then, where the allocation is not 16-byte aligned (wasm's allocator gives 8), copies them
/// to an aligned one: ~5% of a CPU step in the page between the two (profile, 2026-12-04). Flex
/// reads f32s, which need 4.
pub fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    assert_eq!(values.len(), shape.num_elements(), "f32_tensor: {} values for {shape:?}", values.len());
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

/// `O` new tensors of the inputs' shape, filled by `f(the inputs' floats, the outputs' floats)`,
/// for `I` inputs of one shape (no broadcasting). The inputs back unchanged where they do not
/// all hold `f32`s of one non-empty shape: the caller falls back to flex's own operations.
pub fn zip_map<const I: usize, const O: usize>(inputs: [FlexTensor; I], f: impl FnOnce([&[f32]; I], [&mut [f32]; O])) -> Result<[FlexTensor; O], [FlexTensor; I]> {
    let Some(shape) = inputs.first().map(|t| t.layout().shape().clone()) else { return Err(inputs) };
    if shape.num_elements() == 0 || inputs.iter().any(|t| t.dtype() != DType::F32 || *t.layout().shape() != shape) {
        return Err(inputs);
    }
    let inputs = inputs.map(|t| t.to_contiguous());
    let mut outputs: [Vec<f32>; O] = std::array::from_fn(|_| vec![0.0; shape.num_elements()]);
    f(inputs.each_ref().map(floats), outputs.each_mut().map(Vec::as_mut_slice));
    Ok(outputs.map(|values| f32_tensor(values, shape.clone())))
}

/// For a row-wise operation over the last dimension of `x` with per-column vectors `columns`:
/// the shape of one value per row ([..., 1]) and the row width, where `x` and every vector
/// hold `f32`s, `x` is not empty and each vector is [width]. `None`: the caller falls back.
pub fn rows_of(x: &FlexTensor, columns: &[&FlexTensor]) -> Option<(Shape, usize)> {
    let shape = x.layout().shape();
    let width = *shape.last()?;
    let fits = x.dtype() == DType::F32 && width > 0 && shape.num_elements() > 0 && columns.iter().all(|c| c.dtype() == DType::F32 && c.layout().shape().as_slice() == [width]);
    let mut rows_shape: Vec<usize> = shape.iter().copied().collect();
    *rows_shape.last_mut()? = 1;
    fits.then(|| (Shape::from(rows_shape), width))
}

/// The floats of a contiguous f32 tensor (`to_contiguous` first).
pub fn floats(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// The values of an integer tensor as indices, in logical order; `None` for a negative value or
/// a dtype other than i64, i32 or u32.
pub fn indices(t: &FlexTensor) -> Option<Vec<usize>> {
    let t = t.to_contiguous();
    match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.iter().map(|&i| usize::try_from(i).ok()).collect(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&i| usize::try_from(i).ok()).collect(),
        DType::U32 => Some(t.as_slice::<u32>()?.iter().map(|&i| i as usize).collect()),
        _ => None,
    }
}

/// A new tensor of `input`'s shape holding `f(input's floats)` (`zip_map` with one of each).
pub fn map(input: FlexTensor, f: impl FnOnce(&[f32], &mut [f32])) -> Result<FlexTensor, FlexTensor> {
    zip_map([input], |[input], [output]| f(input, output)).map(|[output]| output).map_err(|[input]| input)
}

/// As `map`, with two outputs.
pub fn map_to_two(input: FlexTensor, f: impl FnOnce(&[f32], &mut [f32], &mut [f32])) -> Result<(FlexTensor, FlexTensor), FlexTensor> {
    zip_map([input], |[input], [first, second]| f(input, first, second)).map(|[first, second]| (first, second)).map_err(|[input]| input)
}

/// As `map`, for two tensors of one shape.
pub fn map2(a: FlexTensor, b: FlexTensor, f: impl FnOnce(&[f32], &[f32], &mut [f32])) -> Result<FlexTensor, (FlexTensor, FlexTensor)> {
    zip_map([a, b], |[a, b], [output]| f(a, b, output)).map(|[output]| output).map_err(|[a, b]| (a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::TensorData;

    fn tensor(values: Vec<f32>, dims: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, dims))
    }

    #[test]
    fn zip_map_reads_views_in_order_and_refuses_what_it_cannot_zip() {
        // A transposed view is read in its logical order.
        let a = tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
        let a_t = a.transpose(0, 1);
        let b = tensor(vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0], [3, 2]);
        let [sum, product] = zip_map([a_t, b], |[a, b], [sum, product]| {
            for i in 0..a.len() {
                sum[i] = a[i] + b[i];
                product[i] = a[i] * b[i];
            }
        })
        .unwrap();
        assert_eq!(sum.layout().shape().clone(), Shape::from(vec![3, 2]));
        assert_eq!(sum.as_slice::<f32>().unwrap(), &[11.0, 24.0, 32.0, 45.0, 53.0, 66.0]);
        assert_eq!(product.as_slice::<f32>().unwrap(), &[10.0, 80.0, 60.0, 200.0, 150.0, 360.0]);

        // Different shapes (a broadcast), another dtype, nothing at all: back unchanged.
        let other = tensor(vec![1.0, 2.0], [1, 2]);
        assert!(map2(tensor(vec![0.0; 6], [3, 2]), other, |_, _, _| unreachable!()).is_err());
        let ints = FlexTensor::from_data(TensorData::new(vec![1i32, 2], [1, 2]));
        assert!(map(ints, |_, _| unreachable!()).is_err());
        assert!(map(tensor(Vec::new(), [0, 2]), |_, _| unreachable!()).is_err());
    }
}
