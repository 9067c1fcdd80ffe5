import LoomWire

/// A serializable handle to a peer's registered memory region.
public struct RegionDescriptor: Sendable, Hashable {
    public var owner: String
    public var regionID: UInt32
    /// The owner's registration epoch; a restart or re-registration changes
    /// it, so descriptors handed out before are refused.
    public var epoch: UInt64
    public var length: Int
    public var backendKeys: [String: [UInt8]]

    public init(owner: String, regionID: UInt32, epoch: UInt64, length: Int, backendKeys: [String: [UInt8]] = [:]) {
        self.owner = owner
        self.regionID = regionID
        self.epoch = epoch
        self.length = length
        self.backendKeys = backendKeys
    }

    public var proto: Loom_Transfer_RegionDescriptor {
        var proto = Loom_Transfer_RegionDescriptor()
        proto.owner = owner
        proto.regionID = regionID
        proto.epoch = epoch
        proto.length = UInt64(length)
        proto.backendKeys = backendKeys.mapValues { Data($0) }
        return proto
    }

    public init(_ proto: Loom_Transfer_RegionDescriptor) {
        self.init(owner: proto.owner, regionID: proto.regionID, epoch: proto.epoch,
                  length: Int(clamping: proto.length), backendKeys: proto.backendKeys.mapValues { [UInt8]($0) })
    }

    public func serialized() throws -> [UInt8] { try proto.serializedBytes() }

    public init(serialized bytes: [UInt8]) throws {
        self.init(try Loom_Transfer_RegionDescriptor(serializedBytes: bytes))
    }

    /// Throws unless `[offset, offset + count)` lies inside the region.
    public func checkBounds(offset: Int, count: Int) throws(TransferError) {
        guard offset >= 0, count >= 0, offset <= length, count <= length - offset else {
            throw TransferError(.outOfRegion, "write of \(count) bytes at offset \(offset) falls outside region \(regionID) of \(owner) (\(length) bytes)")
        }
    }
}

import struct Foundation.Data
