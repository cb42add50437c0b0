#pragma once
// Errors as values: every module declares `enum class Errc` and registers it as a
// boost::system error category through SimpleErrorCategory, so results compose as
// boost::system::result<T> across modules without exceptions.

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>

namespace peertun::base {

template <class T>
using Result = boost::system::result<T, boost::system::error_code>;

using ErrorCode = boost::system::error_code;

// A category whose messages come from a plain function: enough for every module's Errc.
// boost::system::error_category's destructor is non-virtual by design (categories are
// never deleted through a base pointer), so that warning is silenced for this class.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class SimpleErrorCategory final : public boost::system::error_category {
 public:
  using MessageFn = const char* (*)(int) noexcept;
  constexpr SimpleErrorCategory(const char* category_name, MessageFn message_fn) noexcept
      : name_(category_name), message_(message_fn) {}

  const char* name() const noexcept override { return name_; }
  std::string message(int ev) const override { return message_(ev); }

 private:
  const char* name_;
  MessageFn message_;
};
#pragma GCC diagnostic pop

}  // namespace peertun::base
