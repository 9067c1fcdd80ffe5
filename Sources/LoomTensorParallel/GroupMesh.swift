import Foundation
import Glibc
import LoomTransfer

/// The TCP connections between ranks on different hosts, made once when
/// the group forms: every rank dials each lower rank it cannot share memory
/// with and accepts each such higher one, so every pair ends up with one
/// connection whichever rank started first. A connection opens with a
/// hello naming the dialling rank and the group's token (from the leader's
/// answer), so a stray or stale connection is dropped, not believed.
enum GroupMesh {
    static let helloBytes = 16
    static let helloMagic: UInt32 = 0x4854_504C  // "LPTH"

    /// Where this rank's peers on other hosts reach it: the listener every
    /// rank opens before it joins (so no peer can dial too early).
    static func listen() throws -> LaneListener {
        try LaneListener(host: "0.0.0.0")
    }

    /// `leaderHost` is the address this rank reached the leader at: the
    /// leader's own entry carries no host, since it cannot know which of its
    /// addresses its ranks see. Returns a socket per peer on another host.
    static func connect(_ me: GroupMember, members: [GroupMember], listener: LaneListener, leaderHost: String, token: UInt64, within timeout: Duration) throws -> [Int: LaneSocket] {
        let deadline = ContinuousClock.now + timeout
        let remote = members.filter { $0.hostID != me.hostID }
        var sockets: [Int: LaneSocket] = [:]
        do {
            for peer in remote where peer.rank < me.rank {
                sockets[peer.rank] = try dial(peer, host: peer.rank == 0 ? leaderHost : peer.dataHost, as: me.rank, token: token, until: deadline)
            }
            var expected = Set(remote.filter { $0.rank > me.rank }.map(\.rank))
            while !expected.isEmpty {
                let (rank, socket) = try accept(from: listener, expecting: expected, token: token, until: deadline, me: me.rank)
                sockets[rank] = socket
                expected.remove(rank)
            }
        } catch {
            for socket in sockets.values { socket.close() }
            throw error
        }
        for socket in sockets.values { socket.keepAlive(idle: 5, interval: 1, count: 5) }
        return sockets
    }

    private static func dial(_ peer: GroupMember, host: String, as rank: Int, token: UInt64, until deadline: ContinuousClock.Instant) throws -> LaneSocket {
        while true {
            do {
                let socket = try LaneSocket.connect(host: host, port: peer.dataPort, timeout: max(.milliseconds(1), min(.seconds(5), deadline - .now)))
                do { try socket.send(hello(rank: rank, token: token)) } catch {
                    socket.close()
                    throw error
                }
                return socket
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw TensorParallelError(.joinTimeout, "rank \(rank) could not connect to rank \(peer.rank) at \(host):\(peer.dataPort) (on \(peer.host)): \(error); is that port reachable from this host?")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    private static func accept(from listener: LaneListener, expecting expected: Set<Int>, token: UInt64, until deadline: ContinuousClock.Instant, me: Int) throws -> (Int, LaneSocket) {
        while true {
            let left = deadline - .now
            guard left > .zero else {
                throw TensorParallelError(.joinTimeout, "rank \(me) waited in vain for rank\(expected.count == 1 ? "" : "s") \(expected.sorted().map(String.init).joined(separator: ", ")) to connect to it; they joined the leader but cannot reach this rank's port \(listener.port)")
            }
            guard listener.socket.readable(within: Int32(max(1, min(left / .milliseconds(1), 1000)))), let socket = listener.accept() else { continue }
            socket.setReceiveTimeout(.seconds(5))
            var bytes = [UInt8](repeating: 0, count: helloBytes)
            let heard = (try? bytes.withUnsafeMutableBytes { try socket.receive(into: $0) }) != nil
            guard heard, let rank = rank(inHello: bytes, token: token), expected.contains(rank) else {
                socket.close()
                continue
            }
            socket.setReceiveTimeout(nil)
            return (rank, socket)
        }
    }

    /// What a dialling rank says first: magic, its rank, the group's token.
    static func hello(rank: Int, token: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: helloBytes)
        bytes.withUnsafeMutableBytes { h in
            h.storeBytes(of: helloMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
            h.storeBytes(of: UInt32(rank).littleEndian, toByteOffset: 4, as: UInt32.self)
            h.storeBytes(of: token.littleEndian, toByteOffset: 8, as: UInt64.self)
        }
        return bytes
    }

    /// The dialling rank, if `bytes` is a hello of this group's.
    static func rank(inHello bytes: [UInt8], token: UInt64) -> Int? {
        bytes.withUnsafeBytes { h in
            guard UInt32(littleEndian: h.loadUnaligned(as: UInt32.self)) == helloMagic,
                  UInt64(littleEndian: h.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) == token else { return nil }
            return Int(UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        }
    }

    /// The address this host uses to reach `host`: a connected UDP socket
    /// sends nothing, but the kernel picks its source address, which is
    /// the one peers on the far side can reach this rank at.
    static func localAddress(toward host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let info = found else { return nil }
        defer { freeaddrinfo(info) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard named == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
