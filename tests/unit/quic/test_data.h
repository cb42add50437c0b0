#pragma once
// Deterministic test payloads and SHA-256 for the quic tests.

#include <gnutls/crypto.h>

#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace peertun::quic::test {

// Bytes at stream offset o are pattern[o % pattern.size()]; the odd size keeps pattern
// boundaries away from the 64 KiB chunk boundaries.
class PatternSource {
 public:
  explicit PatternSource(std::uint64_t seed, std::size_t size = (1 << 20) + 7) : pattern_(size) {
    std::mt19937_64 rng(seed);
    for (auto& b : pattern_) {
      b = static_cast<std::uint8_t>(rng());
    }
  }
  // The bytes [offset, offset + out.size()).
  void fill(std::uint64_t offset, std::span<std::uint8_t> out) const {
    std::size_t pos = static_cast<std::size_t>(offset % pattern_.size());
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t take = std::min(out.size() - done, pattern_.size() - pos);
      std::copy_n(pattern_.data() + pos, take, out.data() + done);
      done += take;
      pos = 0;
    }
  }

 private:
  std::vector<std::uint8_t> pattern_;
};

class Sha256 {
 public:
  Sha256() { gnutls_hash_init(&h_, GNUTLS_DIG_SHA256); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256() {
    if (h_ != nullptr) {
      gnutls_hash_deinit(h_, nullptr);
    }
  }
  void update(std::span<const std::uint8_t> data) { gnutls_hash(h_, data.data(), data.size()); }
  std::string hex() {
    std::array<std::uint8_t, 32> d{};
    gnutls_hash_deinit(h_, d.data());
    h_ = nullptr;
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    for (auto b : d) {
      s.push_back(kDigits[b >> 4]);
      s.push_back(kDigits[b & 15]);
    }
    return s;
  }

 private:
  gnutls_hash_hd_t h_ = nullptr;
};

}  // namespace peertun::quic::test
