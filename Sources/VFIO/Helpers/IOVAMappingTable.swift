/// Non-overlapping IOVA ranges, each with a value, kept in address order: the DMA map
/// table of a vfio-user server or client.
///
/// A balanced (AVL) tree stored in arrays: `insert`, `remove(startingAt:)` and the
/// lookups take O(log n); a walk over k neighbouring entries takes O(log n + k). QEMU
/// behind a vIOMMU maps guest memory one 4 KiB page at a time, so a table may hold tens of
/// thousands of entries (`max_dma_maps`, 65535 in QEMU) and one transfer may cross many
/// adjacent ones. At most `Int32.max` entries.
public struct IOVAMappingTable<Value> {
    /// One entry: a range and its value.
    public typealias Entry = (range: IOVARange, value: Value)

    @usableFromInline
    struct Node {
        @usableFromInline var start: UInt64
        @usableFromInline var last: UInt64
        @usableFromInline var left: Int32
        @usableFromInline var right: Int32
        @usableFromInline var height: Int32

        @inlinable init(start: UInt64, last: UInt64) {
            self.start = start
            self.last = last
            left = -1
            right = -1
            height = 1
        }
    }

    @usableFromInline var nodes: [Node] = []
    /// The value of each node (nil in a free slot).
    @usableFromInline var values: [Value?] = []
    /// Slots of removed nodes, reused first.
    @usableFromInline var free: [Int32] = []
    @usableFromInline var root: Int32 = -1
    @usableFromInline var entryCount = 0

    /// The number of entries.
    public var count: Int { entryCount }

    /// An empty table.
    public init() {}

    public var isEmpty: Bool { count == 0 }

    // MARK: Lookups

    /// The entry whose range holds `address`, if any.
    @inlinable
    public func entry(containing address: UInt64) -> Entry? {
        let i = floorNode(address)
        guard i >= 0, nodes[Int(i)].last >= address else { return nil }
        return entry(at: i)
    }

    /// The first entry (lowest addresses) that shares an address with `range`, if any.
    @inlinable
    public func firstOverlap(with range: IOVARange) -> Entry? {
        var found: Entry?
        walk(from: range.start) { node in
            guard nodes[Int(node)].start <= range.last else { return false }
            if nodes[Int(node)].last >= range.start {
                found = entry(at: node)
                return false
            }
            return true
        }
        return found
    }

    /// Every entry that shares an address with `range`, in address order.
    @inlinable
    public func entries(overlapping range: IOVARange) -> [Entry] {
        var found: [Entry] = []
        walk(from: range.start) { node in
            guard nodes[Int(node)].start <= range.last else { return false }
            if nodes[Int(node)].last >= range.start { found.append(entry(at: node)) }
            return true
        }
        return found
    }

    /// Cuts `[address, address + length)` into the pieces that consecutive adjacent
    /// entries cover, and hands each to `body` in address order with the entry, the
    /// piece's first address and its length, and where it starts in the request. Returns
    /// false, having called `body` for none of them, when a byte of the request lies in no
    /// entry (or past 2^64 - 1); true when `length` is 0.
    @inlinable
    public func forEachPiece(of address: UInt64, length: UInt64,
                             _ body: (_ entry: Entry, _ address: UInt64, _ length: UInt64, _ offset: UInt64) -> Void) -> Bool {
        guard length > 0 else { return true }
        let (end, wraps) = address.addingReportingOverflow(length - 1)
        guard !wraps else { return false }
        let first = floorNode(address)
        guard first >= 0, nodes[Int(first)].last >= address else { return false }
        if nodes[Int(first)].last >= end {
            body(entry(at: first), address, length, 0)
            return true
        }
        // Across entries: first check that they cover every byte, then hand out the pieces.
        var covered = false
        var next = address
        walk(from: address) { node in
            let n = nodes[Int(node)]
            guard n.start <= next, n.last >= next else { return false }
            if n.last >= end {
                covered = true
                return false
            }
            next = n.last + 1
            return true
        }
        guard covered else { return false }
        next = address
        walk(from: address) { node in
            let n = nodes[Int(node)]
            let pieceEnd = Swift.min(n.last, end)
            body(entry(at: node), next, pieceEnd - next + 1, next - address)
            if pieceEnd == end { return false }
            next = pieceEnd + 1
            return true
        }
        return true
    }

    // MARK: Changes

    /// Adds `range` with `value`, unless it shares an address with an entry: then returns
    /// that entry (the first one) and changes nothing.
    @inlinable
    @discardableResult
    public mutating func insert(_ range: IOVARange, _ value: Value) -> Entry? {
        if let existing = firstOverlap(with: range) { return existing }
        precondition(count < Int(Int32.max), "IOVAMappingTable holds at most Int32.max entries")
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
            nodes[Int(slot)] = Node(start: range.start, last: range.last)
            values[Int(slot)] = value
        } else {
            slot = Int32(nodes.count)
            nodes.append(Node(start: range.start, last: range.last))
            values.append(value)
        }
        root = insert(slot, under: root)
        entryCount += 1
        return nil
    }

    /// Removes the entry whose range starts at `start`; returns it, or nil when no range
    /// starts there.
    @inlinable
    @discardableResult
    public mutating func remove(startingAt start: UInt64) -> Entry? {
        var removed: Int32 = -1
        root = remove(start, under: root, removed: &removed)
        guard removed >= 0 else { return nil }
        let gone = entry(at: removed)
        values[Int(removed)] = nil
        free.append(removed)
        entryCount -= 1
        return gone
    }

    /// Removes every entry; returns them in address order.
    @inlinable
    @discardableResult
    public mutating func removeAll() -> [Entry] {
        let all = Array(self)
        self = IOVAMappingTable()
        return all
    }

    // MARK: The tree

    @inlinable
    func entry(at node: Int32) -> Entry {
        let n = nodes[Int(node)]
        return (IOVARange(uncheckedStart: n.start, last: n.last), values[Int(node)]!)
    }

    /// The node with the greatest start at or below `address`, or -1.
    @inlinable
    func floorNode(_ address: UInt64) -> Int32 {
        // The hot path of every DMA: one dependent load per level, no copies.
        nodes.withUnsafeBufferPointer { node in
            var i = root
            var best: Int32 = -1
            while i >= 0 {
                if node[Int(i)].start <= address {
                    best = i
                    i = node[Int(i)].right
                } else {
                    i = node[Int(i)].left
                }
            }
            return best
        }
    }

    /// Visits nodes in address order, from the one holding `address` (or the floor of
    /// `address`, or the first one after it) until `visit` returns false.
    @inlinable
    func walk(from address: UInt64, _ visit: (Int32) -> Bool) {
        guard root >= 0 else { return }
        let first = floorNode(address)
        let from = first >= 0 ? nodes[Int(first)].start : 0
        // An AVL tree of at most Int32.max nodes is at most 45 levels deep.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 64) { stack in
            var depth = 0
            var i = root
            // The path to the first node at or after `from`: the nodes still to visit.
            while i >= 0 {
                if nodes[Int(i)].start >= from {
                    stack[depth] = i
                    depth += 1
                    i = nodes[Int(i)].left
                } else {
                    i = nodes[Int(i)].right
                }
            }
            while depth > 0 {
                depth -= 1
                let node = stack[depth]
                guard visit(node) else { return }
                i = nodes[Int(node)].right
                while i >= 0 {
                    stack[depth] = i
                    depth += 1
                    i = nodes[Int(i)].left
                }
            }
        }
    }

    @inlinable
    func height(_ i: Int32) -> Int32 { i < 0 ? 0 : nodes[Int(i)].height }

    @inlinable
    mutating func updateHeight(_ i: Int32) {
        nodes[Int(i)].height = 1 + Swift.max(height(nodes[Int(i)].left), height(nodes[Int(i)].right))
    }

    @inlinable
    mutating func rotateRight(_ i: Int32) -> Int32 {
        let l = nodes[Int(i)].left
        nodes[Int(i)].left = nodes[Int(l)].right
        nodes[Int(l)].right = i
        updateHeight(i)
        updateHeight(l)
        return l
    }

    @inlinable
    mutating func rotateLeft(_ i: Int32) -> Int32 {
        let r = nodes[Int(i)].right
        nodes[Int(i)].right = nodes[Int(r)].left
        nodes[Int(r)].left = i
        updateHeight(i)
        updateHeight(r)
        return r
    }

    /// Restores the AVL balance at `i` (its subtrees balanced, heights differing by at
    /// most 2); returns the subtree's new root.
    @inlinable
    mutating func rebalance(_ i: Int32) -> Int32 {
        updateHeight(i)
        let l = nodes[Int(i)].left, r = nodes[Int(i)].right
        let balance = height(l) - height(r)
        if balance > 1 {
            if height(nodes[Int(l)].left) < height(nodes[Int(l)].right) {
                let rotated = rotateLeft(l)
                nodes[Int(i)].left = rotated
            }
            return rotateRight(i)
        }
        if balance < -1 {
            if height(nodes[Int(r)].right) < height(nodes[Int(r)].left) {
                let rotated = rotateRight(r)
                nodes[Int(i)].right = rotated
            }
            return rotateLeft(i)
        }
        return i
    }

    @inlinable
    mutating func insert(_ slot: Int32, under i: Int32) -> Int32 {
        guard i >= 0 else { return slot }
        if nodes[Int(slot)].start < nodes[Int(i)].start {
            let child = insert(slot, under: nodes[Int(i)].left)
            nodes[Int(i)].left = child
        } else {
            let child = insert(slot, under: nodes[Int(i)].right)
            nodes[Int(i)].right = child
        }
        return rebalance(i)
    }

    @inlinable
    mutating func remove(_ start: UInt64, under i: Int32, removed: inout Int32) -> Int32 {
        guard i >= 0 else { return -1 }
        let key = nodes[Int(i)].start
        if start < key {
            let child = remove(start, under: nodes[Int(i)].left, removed: &removed)
            nodes[Int(i)].left = child
        } else if start > key {
            let child = remove(start, under: nodes[Int(i)].right, removed: &removed)
            nodes[Int(i)].right = child
        } else {
            removed = i
            let l = nodes[Int(i)].left, r = nodes[Int(i)].right
            if l < 0 { return r }
            if r < 0 { return l }
            // The next node in order takes this one's place.
            var successor: Int32 = -1
            let rest = removeFirst(under: r, removed: &successor)
            nodes[Int(successor)].left = l
            nodes[Int(successor)].right = rest
            return rebalance(successor)
        }
        return rebalance(i)
    }

    @inlinable
    mutating func removeFirst(under i: Int32, removed: inout Int32) -> Int32 {
        let l = nodes[Int(i)].left
        if l < 0 {
            removed = i
            return nodes[Int(i)].right
        }
        let child = removeFirst(under: l, removed: &removed)
        nodes[Int(i)].left = child
        return rebalance(i)
    }
}

extension IOVAMappingTable {
    /// What is wrong with the tree's shape, or nil: ranges in order and apart, every
    /// node's height right and its subtrees' heights within 1, every slot either in the
    /// tree or free, `count` right. For tests.
    func invariantViolation() -> String? {
        var seen = 0
        var previousLast: UInt64?
        func check(_ i: Int32) -> (height: Int32, problem: String?) {
            guard i >= 0 else { return (0, nil) }
            guard Int(i) < nodes.count, values[Int(i)] != nil else { return (0, "node \(i) is free or out of range") }
            let n = nodes[Int(i)]
            let left = check(n.left)
            if let problem = left.problem { return (0, problem) }
            if n.last < n.start { return (0, "node \(i) has last below start") }
            if let previousLast, n.start <= previousLast { return (0, "node \(i) at 0x\(String(n.start, radix: 16)) overlaps or precedes the one before") }
            previousLast = n.last
            seen += 1
            let right = check(n.right)
            if let problem = right.problem { return (0, problem) }
            if abs(left.height - right.height) > 1 { return (0, "node \(i) is out of balance (\(left.height) / \(right.height))") }
            let height = 1 + Swift.max(left.height, right.height)
            if n.height != height { return (0, "node \(i) records height \(n.height), has \(height)") }
            return (height, nil)
        }
        if let problem = check(root).problem { return problem }
        if seen != count { return "\(seen) nodes in the tree, count says \(count)" }
        if seen + free.count != nodes.count { return "\(seen) nodes and \(free.count) free slots, \(nodes.count) slots" }
        if free.contains(where: { values[Int($0)] != nil }) { return "a free slot holds a value" }
        return nil
    }

    /// The tree's height (for tests).
    var treeHeight: Int { Int(height(root)) }
}

extension IOVAMappingTable: Sequence {
    /// The entries in address order.
    public struct Iterator: IteratorProtocol {
        @usableFromInline var entries: IndexingIterator<[Entry]>

        @inlinable init(_ entries: [Entry]) { self.entries = entries.makeIterator() }

        @inlinable public mutating func next() -> Entry? { entries.next() }
    }

    @inlinable
    public func makeIterator() -> Iterator {
        var all: [Entry] = []
        all.reserveCapacity(count)
        walk(from: 0) { node in
            all.append(entry(at: node))
            return true
        }
        return Iterator(all)
    }

    @inlinable public var underestimatedCount: Int { count }
}

extension IOVAMappingTable: Sendable where Value: Sendable {}
extension IOVAMappingTable.Node: Sendable {}
