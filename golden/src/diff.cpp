// Content comparison of two HDF5 files: what the regeneration test uses to show that the
// committed golden set is exactly what the current code produces (file bytes may differ with the
// HDF5 version; stored values may not).
#include <map>
#include <set>

#include "h5.hpp"

namespace nsa::golden {
namespace {

herr_t visit(hid_t, const char* name, const H5O_info_t* info, void* data) {
  auto* out = static_cast<std::map<std::string, H5O_type_t>*>(data);
  (*out)[name] = info->type;
  return 0;
}

std::map<std::string, H5O_type_t> objects(hid_t f, const std::string& path) {
  std::map<std::string, H5O_type_t> out;
  if (H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, visit, &out, H5O_INFO_BASIC) < 0)
    h5::fail(path + ": cannot walk the file (damaged?)");
  return out;
}

herr_t attr_name(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::vector<std::string> attr_names(hid_t obj) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name, &names);
  return names;
}

// An attribute's value as comparable bytes (strings as their text).
std::string attr_bytes(hid_t obj, const std::string& name, const std::string& ctx) {
  h5::Handle a(h5::check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), ctx), H5Aclose);
  h5::Handle t(h5::check(H5Aget_type(a), ctx), H5Tclose);
  if (H5Tget_class(t) == H5T_STRING) return "s:" + h5::read_attr_string(obj, name, ctx);
  h5::Handle s(h5::check(H5Aget_space(a), ctx), H5Sclose);
  const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(s));
  std::string bytes(n * H5Tget_size(t), '\0');
  h5::check(H5Aread(a, t, bytes.data()), ctx);
  return bytes;
}

void diff_attrs(hid_t a, hid_t b, const std::string& where, std::vector<std::string>& out) {
  const auto na = attr_names(a), nb = attr_names(b);
  std::set<std::string> all(na.begin(), na.end());
  all.insert(nb.begin(), nb.end());
  for (const auto& n : all) {
    const bool ha = h5::has_attr(a, n), hb = h5::has_attr(b, n);
    if (ha != hb) {
      out.push_back(where + " attribute " + n + ": only in the " + (ha ? "first" : "second") +
                    " file");
      continue;
    }
    if (attr_bytes(a, n, where + " " + n) != attr_bytes(b, n, where + " " + n))
      out.push_back(where + " attribute " + n + ": values differ");
  }
}

std::string raw_bytes(hid_t ds, const std::string& ctx) {
  h5::Handle t(h5::check(H5Dget_type(ds), ctx), H5Tclose);
  std::size_t n = 1;
  for (auto d : h5::shape_of(ds)) n *= static_cast<std::size_t>(d);
  h5::check_storage(ds, n, H5Tget_size(t), ctx);
  std::string bytes(n * H5Tget_size(t), '\0');
  if (n > 0) h5::check(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), ctx);
  return bytes;
}

}  // namespace

// H5Ovisit lists the root group too (as "."), so root attributes are compared as well; a
// dataset under several names (hard links) is visited once.
std::vector<std::string> diff_files(const std::string& pa, const std::string& pb) {
  const auto fa = h5::open_file(pa), fb = h5::open_file(pb);
  const auto oa = objects(fa, pa), ob = objects(fb, pb);
  std::vector<std::string> out;
  std::set<std::string> all;
  for (const auto& [k, _] : oa) all.insert(k);
  for (const auto& [k, _] : ob) all.insert(k);
  for (const auto& name : all) {
    const auto ia = oa.find(name), ib = ob.find(name);
    if (ia == oa.end() || ib == ob.end()) {
      out.push_back(name + ": only in " + (ia != oa.end() ? pa : pb));
      continue;
    }
    if (ia->second != ib->second) {
      out.push_back(name + ": object kinds differ");
      continue;
    }
    h5::Handle a(h5::check(H5Oopen(fa, name.c_str(), H5P_DEFAULT), pa + ": " + name), H5Oclose);
    h5::Handle b(h5::check(H5Oopen(fb, name.c_str(), H5P_DEFAULT), pb + ": " + name), H5Oclose);
    diff_attrs(a, b, name, out);
    if (ia->second != H5O_TYPE_DATASET) continue;
    if (h5::shape_of(a) != h5::shape_of(b)) {
      out.push_back(name + ": shape " + h5::shape_string(h5::shape_of(a)) + " vs " +
                    h5::shape_string(h5::shape_of(b)));
      continue;
    }
    h5::Handle ta(H5Dget_type(a), H5Tclose), tb(H5Dget_type(b), H5Tclose);
    if (H5Tequal(ta, tb) <= 0) {
      out.push_back(name + ": type " + h5::type_name(a) + " vs " + h5::type_name(b));
      continue;
    }
    const auto ba = raw_bytes(a, pa + ": " + name), bb = raw_bytes(b, pb + ": " + name);
    if (ba != bb) {
      std::size_t first = 0;
      while (first < ba.size() && ba[first] == bb[first]) ++first;
      out.push_back(name + ": data differ (first differing byte " + std::to_string(first) + " of " +
                    std::to_string(ba.size()) + ")");
    }
  }
  return out;
}

}  // namespace nsa::golden
