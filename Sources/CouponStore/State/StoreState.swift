// The business state: campaigns, coupons, users, request ids. One instance, owned by the writer
// thread (and by recovery before the writer starts); nothing else touches it, so it needs no
// locks. Every mutation is an `apply…` function used both by the writer (right after it decides
// and logs an event) and by replay, so the two cannot drift apart.

import CouponLog
import Foundation

/// A coupon in memory: 32 bytes, in one array indexed by coupon id (which is also its code's id in
/// the code table).
struct CouponRecord {
  /// Marks "no user", "end of list", "no slot".
  static let none = UInt32.max

  var campaign: UInt32
  /// The user id it is assigned to, or ``none`` (available, or issued anonymously).
  var owner: UInt32
  /// The next-older coupon of the same owner: a singly linked list per user, so "all coupons of a
  /// user" and "how many of campaign C does the user hold" need no per-user arrays.
  var nextOfOwner: UInt32
  /// While available in a pool: its index in the campaign's `available` array (O(1) removal).
  var poolSlot: UInt32
  /// When it was issued, in milliseconds since 1970 (meaningful once assigned). While the coupon
  /// is staged by an unfinished upload (see StoreState+Pool.swift), the upload's id.
  var issuedAt: Int64
  var redemptions: UInt16
  var state: CouponState
}

/// One entry of a coupon's audit trail.
struct HistoryEntry: Hashable, Sendable {
  enum Kind: UInt8, Sendable { case locked, unlocked, expired, redeemed, rolledBack }
  var kind: Kind
  var time: Int64
  var user: UInt32
}

/// A campaign in memory.
struct CampaignState {
  var record: CampaignRecord
  /// Current stock: the spec's for generated campaigns, the pool size for pool campaigns.
  var stock: Int
  /// Coupon ids in issue order (`claims(of:)` pages through this).
  var issueOrder: [UInt32] = []
  /// Pool campaigns: ids of coupons still available, in no meaningful order.
  var available: [UInt32] = []
  /// Coupons of this campaign per state (indexed by `CouponState.rawValue`).
  var countsByState: [Int] = [0, 0, 0, 0]
  /// Compiled generator for generated campaigns.
  var generator: CodeGenerator?

  /// Copies of the record's fields the claim path reads, as plain values: reading them through
  /// `record` would copy the record (retaining its strings and pattern) on every claim.
  let isPool: Bool
  let perUserLimit: Int
  let startsAt: Int64
  let endsAt: Int64

  init(record: CampaignRecord) {
    self.record = record
    self.stock = record.stock
    if case .generated(let pattern) = record.codes {
      isPool = false
      generator = CodeGenerator(pattern)
    } else {
      // The pool fills through codesAdded events (pregenerated codes are logged as an upload).
      isPool = true
      stock = 0
    }
    perUserLimit = record.perUserLimit
    startsAt = record.startsAt
    endsAt = record.endsAt ?? Int64.max
  }

  var issued: Int { issueOrder.count }
}

/// What a request id's first answer was, in a form replay can rebuild.
enum RememberedOutcome: Hashable, Sendable {
  /// A claim (or specific claim) issued this coupon.
  case claimed(UInt32)
  /// A campaign was created.
  case campaign(UInt32)
  /// A rejection or a lifecycle outcome, by its stable code.
  case outcome(UInt8)
  /// An upload finished (its result is not kept; a retry reports zero new codes).
  case upload
}

/// The complete business state.
struct StoreState {
  var campaigns: [CampaignState] = []
  var campaignIndex: [String: UInt32] = [:]
  var coupons: [CouponRecord] = []
  /// Coupon codes; a coupon's id is its code's id.
  var codes = StringTable()
  var users = StringTable()
  /// The most recent coupon of each user id (head of its `nextOfOwner` list).
  var userHeads: [UInt32] = []
  /// How many coupons each user holds in all (indexed by user id; may be shorter than
  /// `userHeads`: a missing entry is 0). Derived from the coupons' owners.
  var userCouponCounts: [UInt32] = []
  /// For users holding more than ``heldWalkMax`` coupons only: how many they hold per campaign,
  /// keyed `user << 32 | campaign`, so that the per-user limit check of a gift-card user with
  /// hundreds of coupons is O(1). Everyone else's list is short and walked: a dictionary entry
  /// per flash-sale claimant would cost more memory (~20 bytes) than the rest of the claim's
  /// user bookkeeping. Derived from the coupons' owners.
  var heldCounts: [UInt64: UInt32] = [:]
  /// Users with at most this many coupons are counted by walking their list.
  static let heldWalkMax: UInt32 = 8
  /// Expiry time of every locked coupon.
  var lockExpiry: [UInt32: Int64] = [:]
  /// Audit trail of coupons that went beyond assignment.
  var history: [UInt32: [HistoryEntry]] = [:]
  /// Uploads whose chunks were logged but whose final chunk was not (yet): upload id → campaign
  /// and the staged coupon of each code, in upload order (`CouponRecord.none` for a code skipped).
  var stagedUploads: [UInt64: (campaign: UInt32, coupons: [UInt32])] = [:]

  /// Request ids remembered for idempotency, with a FIFO bound.
  var requests: [String: (fingerprint: UInt64, outcome: RememberedOutcome)] = [:]
  var requestOrder: [String] = []
  var requestOrderHead = 0
  let requestWindow: Int

  /// The last log sequence number applied.
  var lastSequence: UInt64 = 0

  init(requestWindow: Int) {
    self.requestWindow = requestWindow
  }

  // MARK: Lookups

  func campaignID(_ id: String) -> UInt32? { campaignIndex[id] }

  /// The coupon with this code, unless it is staged by an unfinished upload (invisible).
  func couponID(code: String) -> UInt32? {
    guard let id = code.withUTF8Bytes({ codes.find($0) }), !coupons[Int(id)].isStaged else {
      return nil
    }
    return id
  }

  func userID(_ user: String) -> UInt32? {
    user.withUTF8Bytes { users.find($0) }
  }

  /// The id of `user` and the hash it was looked up with (to insert it later without hashing
  /// it again); `tag`, if given, is that hash computed earlier.
  func lookUpUser(_ user: String, tag: UInt32? = nil) -> (id: UInt32?, hash: UInt32) {
    user.withUTF8Bytes { bytes in
      let hash = tag ?? StringTable.tag(bytes)
      return (users.find(bytes, tag: hash), hash)
    }
  }

  /// How many coupons of `campaign` user `user` holds.
  func held(by user: UInt32, in campaign: UInt32) -> Int {
    let total = Int(user) < userCouponCounts.count ? userCouponCounts[Int(user)] : 0
    if total > Self.heldWalkMax {
      return Int(heldCounts[UInt64(user) << 32 | UInt64(campaign)] ?? 0)
    }
    var count = 0
    var coupon = Int(user) < userHeads.count ? userHeads[Int(user)] : CouponRecord.none
    while coupon != CouponRecord.none {
      if coupons[Int(coupon)].campaign == campaign { count += 1 }
      coupon = coupons[Int(coupon)].nextOfOwner
    }
    return count
  }

  /// Rebuilds the derived per-user counts from the coupons' owners (after a snapshot load).
  mutating func rebuildHeldCounts() {
    userCouponCounts = [UInt32](repeating: 0, count: userHeads.count)
    heldCounts = [:]
    for coupon in coupons where coupon.owner != CouponRecord.none {
      userCouponCounts[Int(coupon.owner)] += 1
    }
    for coupon in coupons where coupon.owner != CouponRecord.none {
      if userCouponCounts[Int(coupon.owner)] > Self.heldWalkMax {
        heldCounts[UInt64(coupon.owner) << 32 | UInt64(coupon.campaign), default: 0] += 1
      }
    }
  }

  /// The coupon ids of `user` in `campaign` (or all campaigns), oldest first.
  func couponIDs(of user: UInt32, in campaign: UInt32? = nil) -> [UInt32] {
    var result: [UInt32] = []
    var coupon = user < userHeads.count ? userHeads[Int(user)] : CouponRecord.none
    while coupon != CouponRecord.none {
      if campaign == nil || coupons[Int(coupon)].campaign == campaign { result.append(coupon) }
      coupon = coupons[Int(coupon)].nextOfOwner
    }
    return result.reversed()
  }

  // MARK: Mutations shared by the writer and replay

  mutating func applyCampaignCreated(_ record: CampaignRecord) -> UInt32 {
    precondition(campaignIndex[record.id] == nil, "campaign \(record.id) created twice")
    let index = UInt32(campaigns.count)
    campaigns.append(CampaignState(record: record))
    campaignIndex[record.id] = index
    reserveRoom(forCoupons: record.stock, of: index)
    return index
  }

  /// The most coupons one campaign creation makes room for ahead (see ``reserveRoom(forCoupons:of:)``).
  static let reservedCouponsMax = 1 << 24

  /// Makes room, in the arrays every claim appends to, for `stock` more coupons (capped at
  /// ``reservedCouponsMax``) and as many new users, so that the claims of a sale do not stop
  /// the writer to copy an array of millions of entries into a larger one (a 100 ms pause at ten
  /// million coupons); the copy, if any, happens now, at campaign creation. Capacity only: the
  /// pages are not touched until used, so an unsold stock costs address space, not memory.
  private mutating func reserveRoom(forCoupons stock: Int, of campaign: UInt32) {
    let additional = min(stock, Self.reservedCouponsMax)
    guard additional > 0 else { return }
    // Plain reservations, not `reserveLarge`: asking for huge pages here would make the writer's
    // page faults, all through a sale, wait for the kernel to compact memory into 2 MiB pages.
    coupons.reserveCapacity(coupons.count + additional)
    campaigns[Int(campaign)].issueOrder.reserveCapacity(additional)
    userHeads.reserveCapacity(userHeads.count + additional)
    userCouponCounts.reserveCapacity(userCouponCounts.count + additional)
    codes.reserveStorage(additional: additional)
    users.reserveStorage(additional: additional)
  }

  /// Issues a new coupon with a freshly generated `code` (which must be unused) to `user`.
  /// `codeTag` is the code's ``StringTable/tag(_:)`` if the caller computed it already.
  mutating func applyClaimed(
    campaign: UInt32, user: UInt32?, code: UnsafeRawBufferPointer, codeTag: UInt32? = nil,
    time: Int64
  ) -> UInt32 {
    let coupon = codes.insert(code, tag: codeTag ?? StringTable.tag(code))
    precondition(Int(coupon) == coupons.count, "code table and coupons out of step")
    coupons.append(
      CouponRecord(
        campaign: campaign, owner: CouponRecord.none, nextOfOwner: CouponRecord.none,
        poolSlot: CouponRecord.none, issuedAt: time, redemptions: 0, state: .assigned))
    campaigns[Int(campaign)].issueOrder.append(coupon)
    campaigns[Int(campaign)].countsByState[Int(CouponState.assigned.rawValue)] += 1
    if let user { link(coupon, to: user) }
    checkIssued(campaign)
    return coupon
  }

  /// Assigns an available pool coupon to `user`.
  mutating func applyPoolClaimed(coupon: UInt32, user: UInt32?, time: Int64) {
    let campaign = coupons[Int(coupon)].campaign
    precondition(coupons[Int(coupon)].state == .available, "pool coupon \(coupon) not available")
    // Swap-remove from the available array; the moved coupon learns its new slot.
    let slot = Int(coupons[Int(coupon)].poolSlot)
    let last = campaigns[Int(campaign)].available.removeLast()
    if last != coupon {
      campaigns[Int(campaign)].available[slot] = last
      coupons[Int(last)].poolSlot = UInt32(slot)
    }
    coupons[Int(coupon)].poolSlot = CouponRecord.none
    coupons[Int(coupon)].state = .assigned
    coupons[Int(coupon)].issuedAt = time
    campaigns[Int(campaign)].issueOrder.append(coupon)
    campaigns[Int(campaign)].countsByState[Int(CouponState.available.rawValue)] -= 1
    campaigns[Int(campaign)].countsByState[Int(CouponState.assigned.rawValue)] += 1
    if let user { link(coupon, to: user) }
    checkIssued(campaign)
  }

  /// Moves a coupon to a new lifecycle state and records it in the audit trail.
  mutating func applyTransition(
    coupon: UInt32, to state: CouponState, entry: HistoryEntry.Kind, time: Int64
  ) {
    let campaign = Int(coupons[Int(coupon)].campaign)
    let old = coupons[Int(coupon)].state
    campaigns[campaign].countsByState[Int(old.rawValue)] -= 1
    campaigns[campaign].countsByState[Int(state.rawValue)] += 1
    coupons[Int(coupon)].state = state
    history[coupon, default: []].append(
      HistoryEntry(kind: entry, time: time, user: coupons[Int(coupon)].owner))
  }

  mutating func internUser(_ user: String) -> UInt32 {
    let id = user.withUTF8Bytes { users.intern($0) }
    if Int(id) == userHeads.count { userHeads.append(CouponRecord.none) }
    return id
  }

  /// Adds a user known to be absent, whose hash is `hash`.
  mutating func insertUser(_ user: String, hash: UInt32) -> UInt32 {
    let id = user.withUTF8Bytes { users.insert($0, tag: hash) }
    if Int(id) == userHeads.count { userHeads.append(CouponRecord.none) }
    return id
  }

  /// Remembers a request id's outcome, forgetting the oldest beyond the window.
  mutating func remember(_ tag: RequestTag, _ outcome: RememberedOutcome) {
    guard requestWindow > 0, requests[tag.id] == nil else { return }
    requests[tag.id] = (tag.fingerprint, outcome)
    requestOrder.append(tag.id)
    if requests.count > requestWindow {
      let oldest = requestOrder[requestOrderHead]
      requestOrderHead += 1
      requests[oldest] = nil
      if requestOrderHead > 4096, requestOrderHead * 2 > requestOrder.count {
        requestOrder.removeFirst(requestOrderHead)
        requestOrderHead = 0
      }
    }
  }

  private mutating func link(_ coupon: UInt32, to user: UInt32) {
    coupons[Int(coupon)].owner = user
    coupons[Int(coupon)].nextOfOwner = userHeads[Int(user)]
    userHeads[Int(user)] = coupon
    if Int(user) >= userCouponCounts.count {
      userCouponCounts.append(
        contentsOf: repeatElement(0, count: Int(user) + 1 - userCouponCounts.count))
    }
    userCouponCounts[Int(user)] += 1
    let total = userCouponCounts[Int(user)]
    if total == Self.heldWalkMax + 1 {
      // The list just outgrew walking: count all of it once into the map.
      var listed = userHeads[Int(user)]
      while listed != CouponRecord.none {
        heldCounts[UInt64(user) << 32 | UInt64(coupons[Int(listed)].campaign), default: 0] += 1
        listed = coupons[Int(listed)].nextOfOwner
      }
    } else if total > Self.heldWalkMax + 1 {
      heldCounts[UInt64(user) << 32 | UInt64(coupons[Int(coupon)].campaign), default: 0] += 1
    }
  }

  private func checkIssued(_ campaign: UInt32) {
    let state = campaigns[Int(campaign)]
    precondition(state.issued <= state.stock, "campaign \(state.record.id) oversold")
  }

  // MARK: Read models

  func campaign(at index: UInt32) -> Campaign {
    let state = campaigns[Int(index)]
    let record = state.record
    let codes: CodeSource
    switch record.codes {
    case .generated(let pattern): codes = .generated(pattern)
    case .pool: codes = .pool
    case .pregenerated(let pattern, let count): codes = .pregenerated(pattern, count: count)
    }
    return Campaign(
      id: record.id, name: record.name, stock: state.stock, issued: state.issued,
      startsAt: Date(millis: record.startsAt), endsAt: record.endsAt.map(Date.init(millis:)),
      perUserLimit: record.perUserLimit, redemptionsPerCoupon: record.redemptionsPerCoupon,
      codes: codes, lockTimeout: Double(record.lockTimeoutMillis) / 1000,
      expiresAt: record.expiresAt.map(Date.init(millis:)),
      createdAt: Date(millis: record.createdAt))
  }

  func coupon(_ id: UInt32) -> Coupon {
    let record = coupons[Int(id)]
    return Coupon(
      code: codes.string(of: id),
      campaign: campaigns[Int(record.campaign)].record.id,
      user: record.owner == CouponRecord.none ? nil : users.string(of: record.owner),
      state: record.state,
      issuedAt: record.state == .available ? nil : Date(millis: record.issuedAt),
      redemptions: Int(record.redemptions),
      lockExpiresAt: record.state == .locked ? lockExpiry[id].map(Date.init(millis:)) : nil)
  }

  func claimRecord(_ id: UInt32) -> ClaimRecord {
    let record = coupons[Int(id)]
    return ClaimRecord(
      user: record.owner == CouponRecord.none ? nil : users.string(of: record.owner),
      code: codes.string(of: id), claimedAt: Date(millis: record.issuedAt))
  }
}

extension Date {
  /// A date from milliseconds since 1970.
  init(millis: Int64) {
    self.init(timeIntervalSince1970: Double(millis) / 1000)
  }

  /// Milliseconds since 1970, rounded down; clamped to the range events can hold.
  var millis: Int64 {
    let value = (timeIntervalSince1970 * 1000).rounded(.down)
    if value.isNaN { return 0 }
    return Int64(max(min(value, 9.0e15), -9.0e15))
  }
}
