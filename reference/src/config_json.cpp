// Config files (docs/config-format.md). Any byte string is either a Config or a ConfigError: the
// JSON parser's own errors, nesting deeper than a config needs, duplicate keys, unknown keys,
// wrong JSON types and integers outside int64 are all reported with the field and what it expects.
#include "nsa/ref/config_json.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace nsa::ref {
namespace {

using nlohmann::json;

// A config is an object of scalars and integer arrays: depth 2 at most. Deeper input is cut
// off while parsing, so hostile nesting can neither exhaust memory nor the stack.
constexpr int kMaxDepth = 2;

std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "number " + j.dump();
    case json::value_t::string: {
      auto s = j.dump();
      if (s.size() > 60) s = s.substr(0, 57) + "...";
      return "string " + s;
    }
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a binary value";
  }
}

const std::string kInt64Rule = "expected an integer in [-9223372036854775808, 9223372036854775807]";

int64_t as_int64(const json& j, const std::string& field) {
  if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
  if (j.is_number_unsigned()) {
    const auto u = j.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return static_cast<int64_t>(u);
    throw ConfigError(field, kind_of(j), kInt64Rule + " (out of range)");
  }
  if (j.is_number_float()) {
    // The parser turns integers beyond 64 bits into floats; say which problem it is.
    const double x = j.get<double>();
    const bool huge = std::floor(x) == x && std::fabs(x) >= 0x1p63;
    throw ConfigError(field, kind_of(j),
                      kInt64Rule + (huge ? " (out of range)"
                                         : " (a non-integer number: write integers without a "
                                           "fraction or exponent)"));
  }
  throw ConfigError(field, kind_of(j), kInt64Rule);
}

bool as_bool(const json& j, const std::string& field) {
  if (!j.is_boolean()) throw ConfigError(field, kind_of(j), "expected true or false");
  return j.get<bool>();
}

std::string as_string(const json& j, const std::string& field, const std::string& expected) {
  if (!j.is_string()) throw ConfigError(field, kind_of(j), "expected a string: " + expected);
  return j.get<std::string>();
}

template <class E>
E as_enum(const json& j, const std::string& field) {
  const auto expected = "one of " + allowed_values<E>();
  const auto text = as_string(j, field, expected);
  E e{};
  if (!parse_enum(text, e)) throw ConfigError(field, kind_of(j), "expected " + expected);
  return e;
}

std::vector<int64_t> as_int_list(const json& j, const std::string& field) {
  if (!j.is_array())
    throw ConfigError(field, kind_of(j), "expected an array of integers (B+1 offsets)");
  std::vector<int64_t> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i)
    out.push_back(as_int64(j[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

using Setter = std::function<void(Config&, const json&, const std::string&)>;

template <class E>
Setter enum_setter(E Config::*member) {
  return [member](Config& c, const json& j, const std::string& f) { c.*member = as_enum<E>(j, f); };
}
Setter int_setter(int64_t Config::*member) {
  return [member](Config& c, const json& j, const std::string& f) { c.*member = as_int64(j, f); };
}
Setter bool_setter(bool Config::*member) {
  return [member](Config& c, const json& j, const std::string& f) { c.*member = as_bool(j, f); };
}
Setter list_setter(std::vector<int64_t> Config::*member) {
  return
      [member](Config& c, const json& j, const std::string& f) { c.*member = as_int_list(j, f); };
}

// Every Config field except "profile" (applied first, separately), by its JSON key.
const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"layout", enum_setter(&Config::layout)},
      {"batch", int_setter(&Config::batch)},
      {"t_k", int_setter(&Config::t_k)},
      {"t_q", int_setter(&Config::t_q)},
      {"cu_seqlens_k", list_setter(&Config::cu_seqlens_k)},
      {"cu_seqlens_q", list_setter(&Config::cu_seqlens_q)},
      {"h_q", int_setter(&Config::h_q)},
      {"h_kv", int_setter(&Config::h_kv)},
      {"d_k", int_setter(&Config::d_k)},
      {"d_v", int_setter(&Config::d_v)},
      {"scale",
       [](Config& c, const json& j, const std::string& f) {
         if (j.is_null()) {
           c.scale.reset();
         } else if (j.is_number()) {
           c.scale = j.get<double>();
         } else {
           throw ConfigError(f, kind_of(j), "expected a number or null (null: 1/sqrt(d_k))");
         }
       }},
      {"cmp_block", int_setter(&Config::cmp_block)},
      {"cmp_stride", int_setter(&Config::cmp_stride)},
      {"slc_block", int_setter(&Config::slc_block)},
      {"top_n", int_setter(&Config::top_n)},
      {"n_init", int_setter(&Config::n_init)},
      {"n_local", int_setter(&Config::n_local)},
      {"window", int_setter(&Config::window)},
      {"enable_cmp", bool_setter(&Config::enable_cmp)},
      {"enable_slc", bool_setter(&Config::enable_slc)},
      {"enable_win", bool_setter(&Config::enable_win)},
      {"phi", enum_setter(&Config::phi)},
      {"phi_hidden", int_setter(&Config::phi_hidden)},
      {"phi_act", enum_setter(&Config::phi_act)},
      {"dtype", enum_setter(&Config::dtype)},
      {"shared_kv", bool_setter(&Config::shared_kv)},
      {"given_indices", bool_setter(&Config::given_indices)},
      {"cmp_given", bool_setter(&Config::cmp_given)},
      {"cmp_visibility", enum_setter(&Config::cmp_visibility)},
      {"score_mapping", enum_setter(&Config::score_mapping)},
      {"group_reduce", enum_setter(&Config::group_reduce)},
      {"forced_mode", enum_setter(&Config::forced_mode)},
      {"tie_break", enum_setter(&Config::tie_break)},
      {"slc_causal", enum_setter(&Config::slc_causal)},
      {"index_policy", enum_setter(&Config::index_policy)},
      {"window_keys", enum_setter(&Config::window_keys)},
      {"topn_rounding", enum_setter(&Config::topn_rounding)},
  };
  return table;
}

std::string known_keys() {
  std::string s = "profile";
  for (const auto& [k, _] : setters()) s += "|" + k;
  return s;
}

// A key as an error message names it: JSON-escaped, so that control characters (a "\u0000" key
// would cut the message short at the NUL) show as written.
std::string key_name(const std::string& key) {
  const std::string quoted = json(key).dump(-1, ' ', false, json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

// Thrown from the parser callback; converted to ConfigError outside the parser.
struct Rejected {
  std::string field, value, rule;
};

json parse_document(std::string_view text) {
  std::set<std::string> seen;
  json::parser_callback_t cb = [&seen](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxDepth)
      throw Rejected{"<json>", "nesting depth " + std::to_string(depth + 1),
                     "a config is an object of scalars and integer arrays (depth <= 2)"};
    if (event == json::parse_event_t::key && depth == 1) {
      const auto key = parsed.get<std::string>();
      if (!seen.insert(key).second)
        throw Rejected{key_name(key), "given twice", "each key may appear once"};
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Rejected& r) {
    throw ConfigError(r.field, r.value, r.rule);
  } catch (const json::exception& e) {
    // e.what() holds the byte position and what the parser expected there.
    throw ConfigError("<json>", "syntax", std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace

Config config_from_json(std::string_view text) {
  const json doc = parse_document(text);
  if (!doc.is_object())
    throw ConfigError("<json>", kind_of(doc), "a config file is a JSON object {\"field\": value}");
  Config cfg;
  if (const auto it = doc.find("profile"); it != doc.end())
    apply_profile(cfg, as_string(*it, "profile", "a profile name"));
  for (const auto& [key, value] : doc.items()) {
    if (key == "profile") continue;
    const auto it = setters().find(key);
    if (it == setters().end())
      throw ConfigError(key_name(key), "unknown key", "expected one of " + known_keys());
    it->second(cfg, value, key);
  }
  return cfg;
}

std::string config_to_json(const Config& c) {
  nlohmann::ordered_json j;
  j["profile"] = c.profile;
  j["layout"] = to_string(c.layout);
  j["batch"] = c.batch;
  j["t_k"] = c.t_k;
  j["t_q"] = c.t_q;
  j["cu_seqlens_k"] = c.cu_seqlens_k;
  j["cu_seqlens_q"] = c.cu_seqlens_q;
  j["h_q"] = c.h_q;
  j["h_kv"] = c.h_kv;
  j["d_k"] = c.d_k;
  j["d_v"] = c.d_v;
  if (c.scale)
    j["scale"] = *c.scale;
  else
    j["scale"] = nullptr;
  j["cmp_block"] = c.cmp_block;
  j["cmp_stride"] = c.cmp_stride;
  j["slc_block"] = c.slc_block;
  j["top_n"] = c.top_n;
  j["n_init"] = c.n_init;
  j["n_local"] = c.n_local;
  j["window"] = c.window;
  j["enable_cmp"] = c.enable_cmp;
  j["enable_slc"] = c.enable_slc;
  j["enable_win"] = c.enable_win;
  j["phi"] = to_string(c.phi);
  j["phi_hidden"] = c.phi_hidden;
  j["phi_act"] = to_string(c.phi_act);
  j["dtype"] = to_string(c.dtype);
  j["shared_kv"] = c.shared_kv;
  j["given_indices"] = c.given_indices;
  j["cmp_given"] = c.cmp_given;
  j["cmp_visibility"] = to_string(c.cmp_visibility);
  j["score_mapping"] = to_string(c.score_mapping);
  j["group_reduce"] = to_string(c.group_reduce);
  j["forced_mode"] = to_string(c.forced_mode);
  j["tie_break"] = to_string(c.tie_break);
  j["slc_causal"] = to_string(c.slc_causal);
  j["index_policy"] = to_string(c.index_policy);
  j["window_keys"] = to_string(c.window_keys);
  j["topn_rounding"] = to_string(c.topn_rounding);
  return j.dump(2);
}

}  // namespace nsa::ref
