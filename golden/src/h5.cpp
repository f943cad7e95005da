#include "h5.hpp"

#include <algorithm>
#include <mutex>

#include "half.hpp"

namespace nsa::golden::h5 {

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

namespace {

herr_t innermost(unsigned n, const H5E_error2_t* err, void* data) {
  // The walk goes from the innermost frame outwards; keep the first (most specific) one.
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err && err->desc) *out = err->desc;
  return 0;
}

}  // namespace

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost, &msg);
  return msg;
}

void fail(const std::string& context) {
  const auto inner = last_error();
  H5Eclear2(H5E_DEFAULT);
  throw GoldenError(context + (inner.empty() ? "" : " (HDF5: " + inner + ")"));
}

hid_t check(hid_t id, const std::string& context) {
  if (id < 0) fail(context);
  return id;
}

namespace {

// Object timestamps off: regenerating a file gives the same bytes for the same content.
Handle no_times_plist(hid_t cls) {
  Handle p(check(H5Pcreate(cls), "H5Pcreate"), H5Pclose);
  check(H5Pset_obj_track_times(p, 0), "H5Pset_obj_track_times");
  return p;
}

}  // namespace

Handle create_file(const std::string& path) {
  silence_errors();
  // The HDF5 1.10 file format (read by HDF5 >= 1.10, so by every h5py of the last years): its
  // compact chunk indexes and object headers keep the committed golden files within budget.
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "file access list"), H5Pclose);
  check(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110), "libver bounds");
  return Handle(
      check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "cannot create " + path),
      H5Fclose);
}

Handle open_file(const std::string& path) {
  silence_errors();
  const htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0)
    fail(path + ": " + (is == 0 ? "not an HDF5 file" : "cannot be opened (missing or unreadable)"));
  return Handle(check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                      path + ": cannot open (truncated or damaged HDF5 file?)"),
                H5Fclose);
}

Handle create_group(hid_t loc, const std::string& name, const std::string& context) {
  const auto gcpl = no_times_plist(H5P_GROUP_CREATE);
  return Handle(check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT),
                      context + ": cannot create group " + name),
                H5Gclose);
}

bool exists(hid_t loc, const std::string& name) {
  const htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

Handle open_group(hid_t loc, const std::string& name, const std::string& context) {
  if (!exists(loc, name)) throw GoldenError(context + ": group " + name + " is missing");
  return Handle(check(H5Gopen2(loc, name.c_str(), H5P_DEFAULT),
                      context + ": cannot open group " + name + " (damaged file?)"),
                H5Gclose);
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& context) {
  if (!exists(loc, name)) throw GoldenError(context + ": dataset " + name + " is missing");
  H5O_info_t info;
  if (H5Oget_info_by_name2(loc, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
    fail(context + ": cannot inspect " + name);
  if (info.type != H5O_TYPE_DATASET) throw GoldenError(context + ": " + name + " is not a dataset");
  return Handle(check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT),
                      context + ": cannot open dataset " + name + " (damaged file?)"),
                H5Dclose);
}

namespace {

Handle two_byte_float(size_t mant, size_t exp, size_t bias) {
  Handle t(check(H5Tcopy(H5T_IEEE_F32LE), "H5Tcopy"), H5Tclose);
  // Fields first (they must fit in 16 bits before the size can shrink to 2 bytes).
  check(H5Tset_fields(t, 15, mant, exp, 0, mant), "H5Tset_fields");
  check(H5Tset_precision(t, 16), "H5Tset_precision");
  check(H5Tset_size(t, 2), "H5Tset_size");
  check(H5Tset_ebias(t, bias), "H5Tset_ebias");
  return t;
}

}  // namespace

Handle bf16_type() { return two_byte_float(7, 8, 127); }
Handle fp16_type() { return two_byte_float(10, 5, 15); }

Handle file_type_of(nsa::ref::Dtype dt) {
  switch (dt) {
    case nsa::ref::Dtype::f16:
      return fp16_type();
    case nsa::ref::Dtype::bf16:
      return bf16_type();
    case nsa::ref::Dtype::f32:
      return Handle(check(H5Tcopy(H5T_IEEE_F32LE), "H5Tcopy"), H5Tclose);
    case nsa::ref::Dtype::f64:
      break;
  }
  return Handle(check(H5Tcopy(H5T_IEEE_F64LE), "H5Tcopy"), H5Tclose);
}

void write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                   const void* data, const std::vector<int64_t>& dims) {
  std::vector<hsize_t> hd(dims.begin(), dims.end());
  Handle space(check(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr),
                     "dataspace of " + name),
               H5Sclose);
  const auto dcpl = no_times_plist(H5P_DATASET_CREATE);
  hsize_t total = 1;
  for (auto d : hd) total *= d;
  if (total >= 1024) {
    // Chunks of at most 64 Ki elements, whole trailing dimensions where they fit.
    std::vector<hsize_t> chunk(hd.size());
    hsize_t budget = 65536;
    for (std::size_t i = hd.size(); i-- > 0;) {
      chunk[i] = std::max<hsize_t>(1, std::min(hd[i], budget));
      budget = std::max<hsize_t>(1, budget / chunk[i]);
    }
    check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "chunk " + name);
    check(H5Pset_shuffle(dcpl), "shuffle " + name);
    check(H5Pset_deflate(dcpl, 6), "deflate " + name);
  }
  Handle ds(check(H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                  "cannot create dataset " + name),
            H5Dclose);
  if (total > 0)
    check(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "cannot write " + name);
}

namespace {

void write_scalar_attr(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                       const void* value) {
  Handle space(check(H5Screate(H5S_SCALAR), "scalar space"), H5Sclose);
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  Handle a(check(H5Acreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                 "cannot create attribute " + name),
           H5Aclose);
  check(H5Awrite(a, mem_type, value), "cannot write attribute " + name);
}

Handle vlen_string_type() {
  Handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
  check(H5Tset_size(t, H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

Handle open_attr(hid_t loc, const std::string& name, const std::string& context) {
  if (!has_attr(loc, name)) throw GoldenError(context + ": attribute " + name + " is missing");
  return Handle(
      check(H5Aopen(loc, name.c_str(), H5P_DEFAULT), context + ": cannot open attribute " + name),
      H5Aclose);
}

// Reads a numeric scalar attribute with conversion to mem_type; requires class `cls`.
void read_scalar_attr(hid_t loc, const std::string& name, const std::string& context,
                      H5T_class_t cls, hid_t mem_type, void* out, const char* expected) {
  const auto a = open_attr(loc, name, context);
  Handle space(check(H5Aget_space(a), context + ": attribute " + name), H5Sclose);
  Handle type(check(H5Aget_type(a), context + ": attribute " + name), H5Tclose);
  if (H5Sget_simple_extent_npoints(space) != 1 || H5Tget_class(type) != cls)
    throw GoldenError(context + ": attribute " + name + " must be a scalar " + expected);
  check(H5Aread(a, mem_type, out), context + ": cannot read attribute " + name);
}

}  // namespace

void write_attr(hid_t loc, const std::string& name, const std::string& value) {
  const auto t = vlen_string_type();
  const char* p = value.c_str();
  write_scalar_attr(loc, name, t, t, &p);
}

void write_attr(hid_t loc, const std::string& name, int64_t value) {
  write_scalar_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void write_attr_u64(hid_t loc, const std::string& name, uint64_t value) {
  write_scalar_attr(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void write_attr(hid_t loc, const std::string& name, double value) {
  write_scalar_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

bool has_attr(hid_t loc, const std::string& name) {
  const htri_t r = H5Aexists(loc, name.c_str());
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::string read_attr_string(hid_t loc, const std::string& name, const std::string& context) {
  const auto a = open_attr(loc, name, context);
  Handle type(check(H5Aget_type(a), context + ": attribute " + name), H5Tclose);
  Handle space(check(H5Aget_space(a), context + ": attribute " + name), H5Sclose);
  if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1)
    throw GoldenError(context + ": attribute " + name + " must be a scalar string");
  if (H5Tis_variable_str(type) > 0) {
    const auto mem = vlen_string_type();
    char* p = nullptr;
    check(H5Aread(a, mem, &p), context + ": cannot read attribute " + name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  const size_t n = H5Tget_size(type);
  std::string s(n, '\0');
  check(H5Aread(a, type, s.data()), context + ": cannot read attribute " + name);
  s.resize(std::min(s.size(), s.find('\0')));
  return s;
}

int64_t read_attr_int(hid_t loc, const std::string& name, const std::string& context) {
  int64_t v = 0;
  read_scalar_attr(loc, name, context, H5T_INTEGER, H5T_NATIVE_INT64, &v, "integer");
  return v;
}

uint64_t read_attr_u64(hid_t loc, const std::string& name, const std::string& context) {
  uint64_t v = 0;
  read_scalar_attr(loc, name, context, H5T_INTEGER, H5T_NATIVE_UINT64, &v, "integer");
  return v;
}

double read_attr_double(hid_t loc, const std::string& name, const std::string& context) {
  double v = 0;
  read_scalar_attr(loc, name, context, H5T_FLOAT, H5T_NATIVE_DOUBLE, &v, "float");
  return v;
}

std::vector<int64_t> shape_of(hid_t dset) {
  Handle space(check(H5Dget_space(dset), "dataspace"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail("dataspace rank");
  std::vector<hsize_t> d(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return std::vector<int64_t>(d.begin(), d.end());
}

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string type_name(hid_t dset) {
  Handle t(check(H5Dget_type(dset), "datatype"), H5Tclose);
  const auto cls = H5Tget_class(t);
  const size_t size = H5Tget_size(t);
  if (cls == H5T_FLOAT) {
    size_t spos, epos, esize, mpos, msize;
    H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
    const size_t ebias = H5Tget_ebias(t);
    if (size == 8 && msize == 52 && esize == 11) return "fp64";
    if (size == 4 && msize == 23 && esize == 8) return "fp32";
    if (size == 2 && msize == 10 && esize == 5 && ebias == 15 && spos == 15) return "fp16";
    if (size == 2 && msize == 7 && esize == 8 && ebias == 127 && spos == 15) return "bf16";
    return "other float (size " + std::to_string(size) + ", mantissa " + std::to_string(msize) +
           " bits, exponent " + std::to_string(esize) + " bits)";
  }
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(t) == H5T_SGN_2;
    return std::string(is_signed ? "int" : "uint") + std::to_string(8 * size);
  }
  if (cls == H5T_STRING) return "string";
  return "non-numeric type (class " + std::to_string(static_cast<int>(cls)) + ")";
}

void check_storage(hid_t dset, std::size_t elements, std::size_t elem_size,
                   const std::string& context) {
  // Deflate cannot expand data more than about 1032:1, so a dataset declaring far more than its
  // stored bytes can hold is damaged (or crafted): refuse it before allocating for it.
  const double stored = static_cast<double>(H5Dget_storage_size(dset));
  const double declared = static_cast<double>(elements) * static_cast<double>(elem_size);
  if (declared > 2048.0 * stored + 65536.0)
    throw GoldenError(context + ": declares " + std::to_string(elements) +
                      " elements but stores only " +
                      std::to_string(static_cast<long long>(stored)) + " bytes (damaged file?)");
}

std::vector<double> read_floats(hid_t dset, const std::string& context) {
  const auto dims = shape_of(dset);
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  check_storage(dset, n, 2, context);
  std::vector<double> out(n);
  if (n == 0) return out;
  const auto name = type_name(dset);
  if (name == "fp16" || name == "bf16") {
    const auto mem = name == "fp16" ? fp16_type() : bf16_type();
    std::vector<uint16_t> bits(n);
    check(H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data()),
          context + ": cannot read (damaged or truncated data?)");
    const HalfFormat f = name == "fp16" ? kFp16 : kBf16;
    for (std::size_t i = 0; i < n; ++i) out[i] = decode_half(bits[i], f);
    return out;
  }
  if (name != "fp32" && name != "fp64")
    throw GoldenError(context + ": has type " + name + ", expected a float type");
  check(H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
        context + ": cannot read (damaged or truncated data?)");
  return out;
}

std::vector<int32_t> read_int32(hid_t dset, const std::string& context) {
  const auto name = type_name(dset);
  if (name != "int32") throw GoldenError(context + ": has type " + name + ", expected int32");
  const auto dims = shape_of(dset);
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  check_storage(dset, n, sizeof(int32_t), context);
  std::vector<int32_t> out(n);
  if (n > 0)
    check(H5Dread(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
          context + ": cannot read (damaged or truncated data?)");
  return out;
}

}  // namespace nsa::golden::h5
