// Python bindings of mqformer_d2._C.
#include <torch/extension.h>

#include "ms_deform_attn/ms_deform_attn.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ms_deform_attn_forward", &mqformer_d2::ms_deform_attn_forward,
        "Multi-scale deformable attention forward (CUDA or CPU tensors)", py::arg("value"),
        py::arg("spatial_shapes"), py::arg("level_start_index"), py::arg("sampling_locations"),
        py::arg("attention_weights"), py::arg("im2col_step"));
  m.def("ms_deform_attn_backward", &mqformer_d2::ms_deform_attn_backward,
        "Multi-scale deformable attention backward (CUDA or CPU tensors): grad_value, grad_sampling_locations, "
        "grad_attention_weights",
        py::arg("value"), py::arg("spatial_shapes"), py::arg("level_start_index"),
        py::arg("sampling_locations"), py::arg("attention_weights"), py::arg("grad_output"),
        py::arg("im2col_step"));
}
