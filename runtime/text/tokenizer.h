// DeepSeek (Hugging Face tokenizer.json, byte-level BPE) tokenizer that
// encodes and decodes exactly like Hugging Face `tokenizers` does through
// transformers.
//
// Encoding, in order:
//  1. Added tokens (tokenizer.json "added_tokens", special or not) are cut out
//     of the raw text first, leftmost-longest, also when add_special_tokens
//     is false.
//  2. The normalizer must be absent or an empty Sequence (nothing happens).
//  3. The pre_tokenizer (Sequence of Split / ByteLevel) cuts the rest into
//     pieces; see pre_tokenizer.h.
//  4. Each piece goes through byte-level BPE; see bpe.h.
//  5. With add_special_tokens, BOS/EOS are added as transformers does:
//     tokenizer_config.json's add_bos_token / add_eos_token when the config
//     has either key (LlamaTokenizerFast's behaviour), otherwise the
//     "single" template of a TemplateProcessing post_processor.
//
// Decoding follows Hugging Face's ByteLevel decoder: each token's characters
// are mapped back to bytes (a token with a character outside the byte
// alphabet, such as <｜begin▁of▁sentence｜>, contributes its own UTF-8), the
// bytes are joined and ill-formed UTF-8 is replaced by U+FFFD as
// String::from_utf8_lossy does.
//
// Thread safety: a Tokenizer is immutable after loading apart from an
// internal, locked word cache; Encode/Decode may be called concurrently.
#ifndef DSRT_RUNTIME_TEXT_TOKENIZER_H_
#define DSRT_RUNTIME_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/text/added_tokens.h"
#include "runtime/text/utf8.h"

namespace dsrt::text {

class BpeModel;
class PreTokenizer;

class Tokenizer {
 public:
  // `tokenizer_json` is the content of tokenizer.json; `tokenizer_config_json`
  // the content of tokenizer_config.json, or empty when there is none.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json);

  // Reads `dir`/tokenizer.json and, if present, `dir`/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text → ids. `text` must be valid UTF-8 (as Hugging Face's Rust `str`
  // requires); otherwise the result is InvalidArgument naming the byte offset
  // of the first ill-formed or truncated sequence, and nothing is encoded.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens) const;
  // Same, appending to `*out` (left unchanged on error).
  absl::Status EncodeAppend(std::string_view text, bool add_special_tokens,
                            std::vector<int32_t>* out) const;

  // Ids → text. Any id outside [0, vocab_size()) or without a token gives
  // InvalidArgument naming it. With skip_special_tokens, added tokens marked
  // "special" are left out. No clean-up of spaces is done
  // (clean_up_tokenization_spaces is false for DeepSeek).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special_tokens = false) const;

  // Appends the raw bytes `id` decodes to (which may be part of a UTF-8
  // character); with skip_special_tokens, nothing for special tokens.
  absl::Status AppendTokenBytes(int32_t id, bool skip_special_tokens, std::string& out) const;

  // Largest id (model vocab or added token) + 1.
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  // From tokenizer_config.json's bos_token / eos_token; -1 when not given.
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // Token string (added-token content, or the vocab entry in the GPT-2 byte
  // alphabet) ↔ id.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string_view> IdToToken(int32_t id) const;
  bool IsSpecialToken(int32_t id) const;
  // tokenizer_config.json's chat_template (for a list of named templates,
  // the one named "default", else the first); empty when there is none.
  const std::string& chat_template() const { return chat_template_; }
  // What add_special_tokens adds around the text.
  absl::Span<const int32_t> prefix_ids() const { return prefix_ids_; }
  absl::Span<const int32_t> suffix_ids() const { return suffix_ids_; }

 private:
  enum class TokenKind : uint8_t { kNone, kModel, kAdded, kSpecial };

  Tokenizer();
  absl::Status LoadTokenizerJson(std::string_view text);
  absl::Status LoadConfigJson(std::string_view text);
  absl::Status LoadPostProcessor(const nlohmann::json& processor);
  absl::Status BuildDecodeTable();

  std::unique_ptr<BpeModel> bpe_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  // Hugging Face matches tokens with normalized=false on the raw text, then
  // tokens with normalized=true on the normalized segments in between.
  AddedTokenMatcher raw_added_tokens_;
  AddedTokenMatcher normalized_added_tokens_;

  std::vector<std::string> id_to_token_;
  std::vector<TokenKind> token_kind_;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  // Bytes each id decodes to: decode_bytes_[decode_offsets_[id], decode_offsets_[id + 1]).
  std::string decode_bytes_;
  std::vector<uint32_t> decode_offsets_;

  std::vector<int32_t> prefix_ids_;
  std::vector<int32_t> suffix_ids_;
  // Template from tokenizer.json's post_processor, used when the config says
  // nothing about BOS/EOS.
  std::vector<int32_t> template_prefix_ids_;
  std::vector<int32_t> template_suffix_ids_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  std::string chat_template_;
};

// Streaming decode: feed ids one at a time and get back only complete UTF-8
// text. The concatenation of every Push result and Finish equals
// Tokenizer::Decode of all the ids. The tokenizer must outlive the decoder.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // Text completed by this id (possibly empty when the id ends inside a
  // UTF-8 character). An invalid id is an error and changes nothing.
  absl::StatusOr<std::string> Push(int32_t id);
  // What is left: U+FFFD for a character that was never completed. The
  // decoder can be reused afterwards.
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  Utf8StreamAssembler assembler_;
  std::string bytes_;
};

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_TOKENIZER_H_
