#include "stun/binding.h"

namespace peertun::stun {

Bytes make_binding_request(const TransactionId& txid, const BindingRequestOptions& options) {
  MessageBuilder b(Method::Binding, MessageClass::Request, txid,
                   kHeaderSize + 64 + options.software.size() + options.padding);
  if (!options.software.empty()) {
    b.add_string(attr::kSoftware, std::string_view(options.software).substr(0, kMaxSoftwareSize));
  }
  if (options.change_ip || options.change_port) {
    b.add_change_request(options.change_ip, options.change_port);
  }
  if (options.response_port) {
    b.add_response_port(*options.response_port);
  }
  if (options.padding > 0) {
    b.add_padding(options.padding);
  }
  return std::move(b).finish(std::nullopt, options.fingerprint);
}

base::Result<BindingResponse> parse_binding_response(const MessageView& message) {
  if (message.method() != Method::Binding) {
    return Errc::UnexpectedMessage;
  }
  BindingResponse out;
  switch (message.message_class()) {
    case MessageClass::SuccessResponse: {
      out.success = true;
      if (auto x = message.find(attr::kXorMappedAddress)) {
        auto a = decode_xor_address(*x, message.transaction_id());
        if (!a) {
          return a.error();
        }
        out.mapped_address = *a;
      } else if (auto m = message.find(attr::kMappedAddress)) {
        auto a = decode_address(*m);
        if (!a) {
          return a.error();
        }
        out.mapped_address = *a;
      } else {
        return Errc::MissingAttribute;
      }
      if (auto v = message.find(attr::kResponseOrigin)) {
        if (auto a = decode_address(*v)) {
          out.response_origin = *a;
        }
      }
      if (auto v = message.find(attr::kOtherAddress)) {
        if (auto a = decode_address(*v)) {
          out.other_address = *a;
        }
      }
      return out;
    }
    case MessageClass::ErrorResponse: {
      auto v = message.find(attr::kErrorCode);
      if (!v) {
        return Errc::MissingAttribute;
      }
      auto e = decode_error_code(*v);
      if (!e) {
        return e.error();
      }
      out.error_code = e->code;
      out.error_reason = std::string(e->reason);
      if (auto u = message.find(attr::kUnknownAttributes)) {
        if (auto list = decode_unknown_attributes(*u)) {
          out.unknown_attributes = std::move(*list);
        }
      }
      return out;
    }
    case MessageClass::Request:
    case MessageClass::Indication:
      break;
  }
  return Errc::UnexpectedMessage;
}

}  // namespace peertun::stun
