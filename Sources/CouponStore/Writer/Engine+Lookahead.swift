// Looking ahead over a batch of claims, so that the writer does not wait for memory one claim at
// a time.
//
// A claim reads two hash-table slots that lie at random places in tables of millions: its user's
// and its new code's. Each is a cache miss of ~100 ns, and the two were half of the writer
// thread's time. Before deciding a window of claims, the engine hashes each claim's user,
// generates a candidate code for each claim on a generated campaign, and then reads all their
// home slots in one tight loop of independent loads, which the processor keeps in flight
// together; the decisions that follow find the slots in the cache.
//
// Nothing is decided here. A candidate code is checked against the table when its claim is
// decided (an earlier claim of the window may have taken it, or the campaign sold out and it is
// never used), and users are looked up again (with the hash computed here). So the answers are
// exactly those without the lookahead; only the order of memory traffic changes.

import CouponLog

/// What was computed ahead for one claim of a window.
struct PreparedClaim {
  /// The user's tag (``StringTable/tag(_:)``); meaningful only for a claim that names a user.
  var userTag: UInt32 = 0
  /// A candidate code's bytes in ``ClaimLookahead/codes``, empty if none was generated.
  var code: Range<Int> = 0..<0
  /// The candidate code's tag.
  var codeTag: UInt32 = 0
  /// Which lookahead holds the candidate's bytes.
  var source = LookaheadSource.requests
}

/// The engine keeps two lookaheads: one over the writer's batch of requests, one over the claims
/// of a `claim(batch:)` request decided inside that batch.
enum LookaheadSource: Int {
  case requests = 0
  case batch = 1
}

/// The prepared claims of the current window, by position in the window. Reused between windows.
struct ClaimLookahead {
  /// How many claims are prepared at once: their slots (two cache lines each) must still be in
  /// the cache when the last of them is decided, and 256 × 2 lines is 32 KiB.
  static let window = 256

  var entries: [PreparedClaim?] = []
  /// Candidate codes, back to back.
  var codes: [UInt8] = []
  /// Where the window starts, in the caller's positions.
  var start = 0
  /// The slots' values, folded together so that the loads are not optimised away.
  var touched: UInt64 = 0

  /// Whether `position` lies in the window.
  func covers(_ position: Int) -> Bool { entries.indices.contains(position - start) }

  /// The preparation for the claim at `position`, if it lies in the window and was prepared.
  func entry(at position: Int) -> PreparedClaim? {
    let index = position - start
    return entries.indices.contains(index) ? entries[index] : nil
  }
}

extension Engine {
  /// Prepares the claims among `claims` (one element per position; `nil` for a request that is
  /// not a claim by campaign), whose first element is at position `start`, replacing what
  /// `source` held.
  mutating func prepare(
    _ claims: some Collection<(campaign: String, user: String?)?>, startingAt start: Int,
    in source: LookaheadSource
  ) {
    // Moved out and back, so that it is mutated in place, not copied.
    var lookahead = ClaimLookahead()
    swap(&lookahead, &lookaheads[source.rawValue])
    defer { swap(&lookahead, &lookaheads[source.rawValue]) }
    lookahead.entries.removeAll(keepingCapacity: true)
    lookahead.codes.removeAll(keepingCapacity: true)
    lookahead.start = start
    for claim in claims {
      guard let claim else {
        lookahead.entries.append(nil)
        continue
      }
      var prepared = PreparedClaim(source: source)
      if let user = claim.user {
        prepared.userTag = user.withUTF8Bytes { StringTable.tag($0) }
      }
      if let campaign = cachedCampaignID(claim.campaign),
        let generator = state.campaigns[Int(campaign)].generator,
        state.campaigns[Int(campaign)].issued < state.campaigns[Int(campaign)].stock
      {
        let codeStart = lookahead.codes.count
        generator.generate(appendingTo: &lookahead.codes, random: &random)
        prepared.code = codeStart..<lookahead.codes.count
        prepared.codeTag = lookahead.codes.withUnsafeBytes {
          StringTable.tag(UnsafeRawBufferPointer(rebasing: $0[prepared.code]))
        }
      }
      lookahead.entries.append(prepared)
    }
    // The tight loop of independent loads.
    var touched: UInt64 = 0
    for case let prepared? in lookahead.entries {
      touched &+= state.users.touch(tag: prepared.userTag)
      if !prepared.code.isEmpty { touched &+= state.codes.touch(tag: prepared.codeTag) }
    }
    lookahead.touched &+= touched
  }

  /// Puts the prepared candidate code into the code scratch buffer and returns its tag if no
  /// coupon has it yet; `nil` if there is none or it was taken.
  mutating func takeCandidateCode(_ prepared: PreparedClaim?) -> UInt32? {
    guard let prepared, !prepared.code.isEmpty else { return nil }
    let codes = lookaheads[prepared.source.rawValue].codes
    let unused = codes.withUnsafeBytes {
      state.codes.find(UnsafeRawBufferPointer(rebasing: $0[prepared.code]), tag: prepared.codeTag)
        == nil
    }
    guard unused else { return nil }
    codeScratch.removeAll(keepingCapacity: true)
    codeScratch.append(contentsOf: codes[prepared.code])
    return prepared.codeTag
  }
}
