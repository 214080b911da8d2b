// A .pte run by ExecuTorch's own C++ runtime on arm64: the aarch64 libraries of the executorch
// wheel pocketfit exports with (libexecutorch, its XNNPACK backend and its kernels), behind a
// small C interface that _arm64_serve.py calls through ctypes.
//
// Why not the wheel's Python bindings: they link libtorch_python, and torch's aarch64 wheel on
// PyPI is the CUDA build, whose CUDA libraries PyPI does not hold at the versions it pins. The
// runtime libraries themselves need neither torch nor CUDA.
//
// make arm64-root compiles this with Debian's aarch64 cross compiler (see build_root).

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using executorch::aten::ScalarType;
using executorch::extension::from_blob;
using executorch::extension::TensorPtr;
using executorch::extension::module::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

struct Handle {
  explicit Handle(const char* path) : module(path, Module::LoadMode::File) {}
  Module module;
  std::vector<EValue> outputs;
};

int fail(char* err, size_t size, const char* what, Error code) {
  std::snprintf(err, size, "%s (ExecuTorch error 0x%x)", what, static_cast<unsigned>(code));
  return -1;
}

}  // namespace

extern "C" {

void* pf_open(const char* path, char* err, size_t size) {
  auto* handle = new Handle(path);
  Error loaded = handle->module.load_forward();
  if (loaded != Error::Ok) {
    fail(err, size, "cannot load the program's forward method", loaded);
    delete handle;
    return nullptr;
  }
  return handle;
}

// Inputs arrive as ScalarType codes, ranks, the sizes of all inputs one after another, and
// buffers the caller keeps alive for the call.
int pf_run(void* opaque, int count, const int* dtypes, const int* ranks, const int64_t* sizes,
           void* const* data, char* err, size_t size) {
  auto* handle = static_cast<Handle*>(opaque);
  std::vector<TensorPtr> tensors;
  std::vector<EValue> inputs;
  for (int i = 0; i < count; ++i) {
    std::vector<executorch::aten::SizesType> shape(sizes, sizes + ranks[i]);
    sizes += ranks[i];
    tensors.push_back(from_blob(data[i], shape, static_cast<ScalarType>(dtypes[i])));
    inputs.emplace_back(tensors.back());
  }
  auto result = handle->module.forward(inputs);
  if (!result.ok()) {
    return fail(err, size, "forward failed", result.error());
  }
  handle->outputs = std::move(result.get());
  return static_cast<int>(handle->outputs.size());
}

// Output i of the last run: its ScalarType code, rank, sizes (up to 16) and a pointer into the
// runtime's memory, valid until the next run.
int pf_output(void* opaque, int i, int* dtype, int* rank, int64_t* shape, const void** data,
              int64_t* nbytes) {
  auto& value = static_cast<Handle*>(opaque)->outputs.at(i);
  if (!value.isTensor()) {
    return -1;
  }
  const auto& tensor = value.toTensor();
  *dtype = static_cast<int>(tensor.scalar_type());
  *rank = static_cast<int>(tensor.dim());
  if (*rank > 16) {
    return -1;
  }
  for (int d = 0; d < *rank; ++d) {
    shape[d] = tensor.size(d);
  }
  *data = tensor.const_data_ptr();
  *nbytes = static_cast<int64_t>(tensor.nbytes());
  return 0;
}

void pf_close(void* opaque) { delete static_cast<Handle*>(opaque); }

}  // extern "C"
