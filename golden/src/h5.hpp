// Thin RAII and error handling over the HDF5 C library. HDF5's own error printing is silenced;
// every failure becomes a GoldenError carrying our context plus HDF5's innermost message.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/knobs.hpp"

namespace nsa::golden::h5 {

// Turns HDF5's automatic error printing off (once per process).
void silence_errors();

// The innermost message of HDF5's current error stack ("" if none).
std::string last_error();

[[noreturn]] void fail(const std::string& context);

// An owned hid_t with its matching close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Checks an HDF5 return value; throws with context on failure.
hid_t check(hid_t id, const std::string& context);

Handle create_file(const std::string& path);
Handle open_file(const std::string& path);
Handle create_group(hid_t loc, const std::string& name, const std::string& context);
bool exists(hid_t loc, const std::string& name);
Handle open_group(hid_t loc, const std::string& name, const std::string& context);
Handle open_dataset(hid_t loc, const std::string& name, const std::string& context);

// The two-byte float types of the schema (file and memory types are the same: raw bits).
Handle bf16_type();
Handle fp16_type();

// Storage type of an input dtype (fp32, fp16, bf16, fp64).
Handle file_type_of(nsa::ref::Dtype dt);

// Writes a dataset; large ones are chunked with shuffle + gzip. `mem_type` describes `data`.
void write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                   const void* data, const std::vector<int64_t>& dims);

void write_attr(hid_t loc, const std::string& name, const std::string& value);
void write_attr(hid_t loc, const std::string& name, int64_t value);
void write_attr_u64(hid_t loc, const std::string& name, uint64_t value);
void write_attr(hid_t loc, const std::string& name, double value);

bool has_attr(hid_t loc, const std::string& name);
std::string read_attr_string(hid_t loc, const std::string& name, const std::string& context);
int64_t read_attr_int(hid_t loc, const std::string& name, const std::string& context);
uint64_t read_attr_u64(hid_t loc, const std::string& name, const std::string& context);
double read_attr_double(hid_t loc, const std::string& name, const std::string& context);

// The shape of a dataset.
std::vector<int64_t> shape_of(hid_t dset);
std::string shape_string(const std::vector<int64_t>& dims);

// What a float dataset's type is, in our dtype words ("fp32", "fp16", "bf16", "fp64"), or a
// description of anything else ("int32", "other float (size 2, mantissa 5)", ...).
std::string type_name(hid_t dset);

// Throws GoldenError when a dataset declares more elements than its stored bytes can hold.
void check_storage(hid_t dset, std::size_t elements, std::size_t elem_size,
                   const std::string& context);

// Reads a float dataset of any of our float types into doubles (two-byte types are decoded from
// their raw bits, so no HDF5 conversion is involved).
std::vector<double> read_floats(hid_t dset, const std::string& context);
std::vector<int32_t> read_int32(hid_t dset, const std::string& context);

}  // namespace nsa::golden::h5
