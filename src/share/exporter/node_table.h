#pragma once
// The exporter's node table: which node ids B holds, what file each names and how many
// lookups B owes (the FUSE lookup-count rule: every Lookup answer and ReadDir entry adds
// one, Forget subtracts, the node goes at zero; the root never goes).
//
// A node is a path relative to the shared root plus the identity (device, inode, type)
// found there, never an open fd (an fd could be moved out of the root). Hard links share
// one node (keyed by identity) that remembers the latest path it was seen under.
//
// Not thread-safe: the exporter uses it on its executor only.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "share/exporter/fs_ops.h"
#include "share/proto/messages.h"

namespace peertun::share::detail {

class NodeTable {
 public:
  struct Node {
    std::string path;  // relative to the root; "." for the root
    Identity identity;
    std::uint64_t lookups = 0;
  };

  // `max_nodes` bounds the nodes besides the root.
  NodeTable(Identity root, std::size_t max_nodes);

  // nullptr for an unknown id.
  [[nodiscard]] const Node* find(proto::NodeId id) const;
  // Adds one lookup to the node of `identity`, creating it (at `path`) or moving it to
  // `path`. The root's identity gives kRootNode. nullopt when the table is full.
  // `single_link`: a non-directory with one link. Such an identity met under another
  // path is taken for a new file (a new node): the filesystem may have reused the inode
  // number of a deleted file, and B must never see the old name's node serve the new
  // file's bytes. (A rename then also shows as a new file, which is merely uncached.)
  [[nodiscard]] std::optional<proto::NodeId> add_lookup(const Identity& identity, std::string path,
                                                        bool single_link);
  // Drops `count` lookups (all it has, if fewer); unknown ids and the root are ignored.
  void forget(proto::NodeId id, std::uint64_t count);
  // Forgets every node but the root.
  void clear();

  // Nodes including the root.
  [[nodiscard]] std::size_t size() const { return nodes_.size(); }

 private:
  struct IdentityHash {
    std::size_t operator()(const Identity& id) const noexcept;
  };

  std::unordered_map<proto::NodeId, Node> nodes_;
  [[nodiscard]] std::optional<proto::NodeId> add_node(const Identity& identity, std::string path);

  std::unordered_map<Identity, proto::NodeId, IdentityHash> by_identity_;
  // Ids are never reused, so a stale id from B can never name a newer file.
  proto::NodeId next_id_ = proto::kRootNode + 1;
  std::size_t max_nodes_;
};

}  // namespace peertun::share::detail
