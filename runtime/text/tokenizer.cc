#include "runtime/text/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/text/bpe.h"
#include "runtime/text/byte_level.h"
#include "runtime/text/json_util.h"
#include "runtime/text/string_view_compat.h"
#include "runtime/text/pre_tokenizer.h"

namespace dsrt::text {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseJson(std::string_view text, std::string_view file) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file), " is not valid JSON"));
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file), " is not a JSON object"));
  }
  return parsed;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return content.str();
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// A normalizer that does nothing: null, or a Sequence of such normalizers.
bool IsIdentityNormalizer(const json& normalizer) {
  if (normalizer.is_null()) return true;
  if (!normalizer.is_object() || JsonString(normalizer, "type") != "Sequence") return false;
  const auto list = normalizer.find("normalizers");
  if (list == normalizer.end() || !list->is_array()) return false;
  return std::all_of(list->begin(), list->end(), IsIdentityNormalizer);
}

std::string DescribeType(const json& component) {
  if (!JsonField(component, "type").is_null()) return JsonField(component, "type").dump();
  return component.dump();
}

// bos_token / eos_token: a string, an AddedToken object with "content", or
// absent / null.
absl::StatusOr<std::optional<std::string>> TokenContent(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (JsonField(*it, "content").is_string()) {
    return std::optional<std::string>(JsonField(*it, "content").get<std::string>());
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "tokenizer_config.json: ", key, " must be a string or an object with \"content\""));
}

struct AddedTokenSpec {
  std::string content;
  int32_t id;
  bool special;
  bool normalized;
};

absl::StatusOr<std::vector<AddedTokenSpec>> ParseAddedTokens(const json& list) {
  std::vector<AddedTokenSpec> added;
  if (list.is_null()) return added;
  if (!list.is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: added_tokens is not an array");
  }
  for (size_t k = 0; k < list.size(); ++k) {
    const json& entry = list[k];
    const std::string where = absl::StrCat("tokenizer.json: added_tokens[", k, "]");
    if (!JsonField(entry, "content").is_string() || !JsonField(entry, "id").is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " needs a string \"content\" and an integer \"id\""));
    }
    const int64_t id = JsonField(entry, "id").get<int64_t>();
    const std::string content = JsonField(entry, "content").get<std::string>();
    if (id < 0 || id > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat(where, " (\"", content, "\") has id ", id,
                                                     ", outside [0, ", kMaxTokenId, "]"));
    }
    for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
      if (JsonBool(entry, flag, false)) {
        return absl::UnimplementedError(
            absl::StrCat(where, " (\"", content, "\") sets ", flag, ", which is not supported"));
      }
    }
    const bool special = JsonBool(entry, "special", false);
    const bool normalized = JsonBool(entry, "normalized", !special);
    added.push_back({content, static_cast<int32_t>(id), special, normalized});
  }
  return added;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  absl::Status status = tokenizer->LoadTokenizerJson(tokenizer_json);
  if (!status.ok()) return status;
  status = tokenizer->LoadConfigJson(tokenizer_config_json);
  if (!status.ok()) return status;
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  absl::StatusOr<std::string> tokenizer_json = ReadFile(dir + "/tokenizer.json");
  if (!tokenizer_json.ok()) return tokenizer_json.status();
  std::string config_json;
  const std::string config_path = dir + "/tokenizer_config.json";
  if (FileExists(config_path)) {
    absl::StatusOr<std::string> config = ReadFile(config_path);
    if (!config.ok()) return config.status();
    config_json = *std::move(config);
  }
  return FromJson(*tokenizer_json, config_json);
}

absl::Status Tokenizer::LoadTokenizerJson(std::string_view text) {
  absl::StatusOr<json> parsed = ParseJson(text, "tokenizer.json");
  if (!parsed.ok()) return parsed.status();
  const json& root = *parsed;

  if (!IsIdentityNormalizer(JsonField(root, "normalizer"))) {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: normalizer ", DescribeType(JsonField(root, "normalizer")),
                     " is not supported (only null or an empty Sequence)"));
  }
  const json& decoder = JsonField(root, "decoder");
  if (JsonString(decoder, "type") != "ByteLevel") {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: decoder ", DescribeType(decoder),
                                                 " is not supported (only ByteLevel)"));
  }

  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre_tokenizer =
      PreTokenizer::FromJson(JsonField(root, "pre_tokenizer"));
  if (!pre_tokenizer.ok()) return pre_tokenizer.status();
  pre_tokenizer_ = *std::move(pre_tokenizer);

  absl::StatusOr<std::unique_ptr<BpeModel>> bpe =
      BpeModel::FromJson(JsonField(root, "model"));
  if (!bpe.ok()) return bpe.status();
  bpe_ = *std::move(bpe);

  int32_t max_id = -1;
  for (const auto& [token, id] : bpe_->vocab()) max_id = std::max(max_id, id);

  absl::StatusOr<std::vector<AddedTokenSpec>> added =
      ParseAddedTokens(JsonField(root, "added_tokens"));
  if (!added.ok()) return added.status();
  for (const AddedTokenSpec& token : *added) max_id = std::max(max_id, token.id);

  id_to_token_.assign(static_cast<size_t>(max_id) + 1, std::string());
  token_kind_.assign(id_to_token_.size(), TokenKind::kNone);
  token_to_id_.reserve(bpe_->vocab().size() + added->size());
  for (const auto& [token, id] : bpe_->vocab()) {
    id_to_token_[id] = token;
    token_kind_[id] = TokenKind::kModel;
    token_to_id_.insert_or_assign(token, id);
  }
  for (const AddedTokenSpec& token : *added) {
    id_to_token_[token.id] = token.content;
    token_kind_[token.id] = token.special ? TokenKind::kSpecial : TokenKind::kAdded;
    token_to_id_.insert_or_assign(token.content, token.id);
    (token.normalized ? normalized_added_tokens_ : raw_added_tokens_).Add(token.content, token.id);
  }

  absl::Status status = BuildDecodeTable();
  if (!status.ok()) return status;
  return LoadPostProcessor(JsonField(root, "post_processor"));
}

absl::Status Tokenizer::LoadPostProcessor(const json& processor) {
  if (processor.is_null()) return absl::OkStatus();
  const std::string type = JsonString(processor, "type");
  if (type == "ByteLevel") return absl::OkStatus();  // adds no tokens
  if (type == "Sequence" && JsonField(processor, "processors").is_array()) {
    for (const json& step : JsonField(processor, "processors")) {
      absl::Status status = LoadPostProcessor(step);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: post_processor ",
                                                 DescribeType(processor),
                                                 " is not supported (only ByteLevel, "
                                                 "TemplateProcessing or a Sequence of them)"));
  }
  const json& single = JsonField(processor, "single");
  const json& specials = JsonField(processor, "special_tokens");
  if (!single.is_array()) {
    return absl::InvalidArgumentError(
        "tokenizer.json: post_processor TemplateProcessing has no \"single\" array");
  }
  template_prefix_ids_.clear();
  template_suffix_ids_.clear();
  bool after_sequence = false;
  for (const json& piece : single) {
    if (!JsonField(piece, "Sequence").is_null()) {
      after_sequence = true;
      continue;
    }
    const std::string name = JsonString(JsonField(piece, "SpecialToken"), "id");
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer.json: post_processor single template piece ", piece.dump(),
          " is neither a Sequence nor a SpecialToken"));
    }
    const json& ids = JsonField(JsonField(specials, name.c_str()), "ids");
    if (!ids.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer.json: post_processor special token \"", name, "\" has no ids"));
    }
    for (const json& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() >= vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: post_processor special token \"", name, "\" has invalid id ",
            id.dump()));
      }
      (after_sequence ? template_suffix_ids_ : template_prefix_ids_)
          .push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::BuildDecodeTable() {
  decode_bytes_.clear();
  decode_offsets_.assign(1, 0);
  decode_offsets_.reserve(id_to_token_.size() + 1);
  for (const std::string& token : id_to_token_) {
    // As Hugging Face's ByteLevel decoder: map the token back to bytes when
    // every character is in the byte alphabet, else keep its own UTF-8.
    std::optional<std::string> bytes = kByteLevelAlphabet.ToBytes(token);
    decode_bytes_.append(bytes.has_value() ? *bytes : token);
    if (decode_bytes_.size() > UINT32_MAX) {
      return absl::ResourceExhaustedError("tokenizer.json: vocabulary text exceeds 4 GiB");
    }
    decode_offsets_.push_back(static_cast<uint32_t>(decode_bytes_.size()));
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadConfigJson(std::string_view text) {
  const bool has_config = !text.empty();
  json config = json::object();
  if (has_config) {
    absl::StatusOr<json> parsed = ParseJson(text, "tokenizer_config.json");
    if (!parsed.ok()) return parsed.status();
    config = *std::move(parsed);
  }
  for (auto [key, id] : {std::pair{"bos_token", &bos_id_}, std::pair{"eos_token", &eos_id_}}) {
    absl::StatusOr<std::optional<std::string>> content = TokenContent(config, key);
    if (!content.ok()) return content.status();
    if (!content->has_value()) continue;
    const std::optional<int32_t> found = TokenToId(**content);
    if (!found.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", key, " \"",
                                                     **content, "\" is not in the vocabulary"));
    }
    *id = *found;
  }

  const bool config_decides = config.contains("add_bos_token") || config.contains("add_eos_token");
  if (!config_decides) {
    prefix_ids_ = template_prefix_ids_;
    suffix_ids_ = template_suffix_ids_;
  }
  for (auto [key, id, ids] : {std::tuple{"add_bos_token", bos_id_, &prefix_ids_},
                              std::tuple{"add_eos_token", eos_id_, &suffix_ids_}}) {
    if (!config_decides || !JsonBool(config, key, false)) continue;
    if (id < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", key,
                                                     " is true but the token is not given"));
    }
    ids->push_back(id);
  }

  const auto chat_template = config.find("chat_template");
  if (chat_template == config.end() || chat_template->is_null()) return absl::OkStatus();
  if (chat_template->is_string()) {
    chat_template_ = chat_template->get<std::string>();
    return absl::OkStatus();
  }
  if (!chat_template->is_array() || chat_template->empty()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json: chat_template must be a string or a list of {name, template}");
  }
  const json* chosen = &(*chat_template)[0];
  for (const json& entry : *chat_template) {
    if (JsonString(entry, "name") == "default") chosen = &entry;
  }
  if (!JsonField(*chosen, "template").is_string()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json: a chat_template entry has no string \"template\"");
  }
  chat_template_ = JsonField(*chosen, "template").get<std::string>();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  std::vector<int32_t> ids;
  absl::Status status = EncodeAppend(text, add_special_tokens, &ids);
  if (!status.ok()) return status;
  return ids;
}

absl::Status Tokenizer::EncodeAppend(std::string_view text, bool add_special_tokens,
                                     std::vector<int32_t>* out) const {
  if (const std::optional<size_t> bad = FindInvalidUtf8(text); bad.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Encode: text is not valid UTF-8: ill-formed or truncated sequence at byte offset ", *bad,
        " (byte 0x", absl::Hex(static_cast<unsigned char>(text[*bad]), absl::kZeroPad2), ")"));
  }
  const size_t original_size = out->size();
  out->reserve(original_size + text.size() / 3 + 4);
  if (add_special_tokens) out->insert(out->end(), prefix_ids_.begin(), prefix_ids_.end());

  PreTokenizer::ScratchPtr scratch = pre_tokenizer_->NewScratch();
  absl::Status status;
  auto add_token = [out](int32_t id) { out->push_back(id); };
  auto encode_plain = [&](std::string_view segment) {
    if (!status.ok()) return;
    status = pre_tokenizer_->Split(segment, *scratch,
                                   [&](std::string_view piece) { bpe_->EncodeWord(piece, *out); });
  };
  auto encode_unsplit = [&](std::string_view segment) {
    normalized_added_tokens_.Split(segment, encode_plain, add_token);
  };
  raw_added_tokens_.Split(text, encode_unsplit, add_token);
  if (!status.ok()) {
    out->resize(original_size);
    return status;
  }
  if (add_special_tokens) out->insert(out->end(), suffix_ids_.begin(), suffix_ids_.end());
  return absl::OkStatus();
}

absl::Status Tokenizer::AppendTokenBytes(int32_t id, bool skip_special_tokens,
                                         std::string& out) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Decode: id ", id, " is out of range [0, ", vocab_size(), ")"));
  }
  const TokenKind kind = token_kind_[id];
  if (kind == TokenKind::kNone) {
    return absl::InvalidArgumentError(absl::StrCat("Decode: id ", id, " has no token"));
  }
  if (skip_special_tokens && kind == TokenKind::kSpecial) return absl::OkStatus();
  out.append(decode_bytes_, decode_offsets_[id], decode_offsets_[id + 1] - decode_offsets_[id]);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (const int32_t id : ids) {
    absl::Status status = AppendTokenBytes(id, skip_special_tokens, bytes);
    if (!status.ok()) return status;
  }
  if (!FindInvalidUtf8(bytes).has_value()) return bytes;
  std::string text;
  AppendUtf8Lossy(bytes, text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  const auto it = token_to_id_.find(AsAbsl(token));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string_view> Tokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= vocab_size() || token_kind_[id] == TokenKind::kNone) return std::nullopt;
  return id_to_token_[id];
}

bool Tokenizer::IsSpecialToken(int32_t id) const {
  return id >= 0 && id < vocab_size() && token_kind_[id] == TokenKind::kSpecial;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

absl::StatusOr<std::string> StreamDecoder::Push(int32_t id) {
  bytes_.clear();
  absl::Status status = tokenizer_.AppendTokenBytes(id, skip_special_tokens_, bytes_);
  if (!status.ok()) return status;
  std::string text;
  assembler_.Append(bytes_, text);
  return text;
}

std::string StreamDecoder::Finish() {
  std::string text;
  assembler_.Finish(text);
  return text;
}

}  // namespace dsrt::text
