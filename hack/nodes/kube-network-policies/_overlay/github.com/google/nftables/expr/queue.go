// Copyright 2018 Google LLC. All Rights Reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// This file replaces expr/queue.go of github.com/google/nftables v0.3.0 in the build of kube-network-policies
// (go build -overlay, see plinth.operator.devcluster.ensure_go_binary). The one change: a Queue is sent to the
// kernel as xtables' NFQUEUE target (revision 3, through nft_compat) instead of nftables' own "queue" expression.
// Both hand the packet to the same nfnetlink queue with the same number and flags; kernels built without
// CONFIG_NFT_QUEUE (such as the machines Plinth's tests run on) have only the first. Reading rules back is
// unchanged.

package expr

import (
	"encoding/binary"

	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

type QueueAttribute uint16

type QueueFlag uint16

// Possible QueueAttribute values
const (
	QueueNum   QueueAttribute = unix.NFTA_QUEUE_NUM
	QueueTotal QueueAttribute = unix.NFTA_QUEUE_TOTAL
	QueueFlags QueueAttribute = unix.NFTA_QUEUE_FLAGS

	QueueFlagBypass QueueFlag = unix.NFT_QUEUE_FLAG_BYPASS
	QueueFlagFanout QueueFlag = unix.NFT_QUEUE_FLAG_CPU_FANOUT
	QueueFlagMask   QueueFlag = unix.NFT_QUEUE_FLAG_MASK
)

type Queue struct {
	Num   uint16
	Total uint16
	Flag  QueueFlag
}

func (e *Queue) marshal(fam byte) ([]byte, error) {
	return e.target().marshal(fam)
}

func (e *Queue) marshalData(fam byte) ([]byte, error) {
	return e.target().marshalData(fam)
}

// target is the xt_NFQUEUE revision 3 equivalent: struct xt_NFQ_info_v3 {u16 queuenum, queues_total, flags} in
// host byte order, whose flags (NFQ_FLAG_BYPASS 1, NFQ_FLAG_CPU_FANOUT 2) have the values of the NFT_QUEUE_FLAG_*.
func (e *Queue) target() *Target {
	if e.Total == 0 {
		e.Total = 1 // The total default value is 1
	}
	info := make(xt.Unknown, 8) // XT_ALIGN(6)
	binary.NativeEndian.PutUint16(info[0:], e.Num)
	binary.NativeEndian.PutUint16(info[2:], e.Total)
	binary.NativeEndian.PutUint16(info[4:], uint16(e.Flag&QueueFlagMask))
	return &Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

func (e *Queue) unmarshal(fam byte, data []byte) error {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_QUEUE_NUM:
			e.Num = ad.Uint16()
		case unix.NFTA_QUEUE_TOTAL:
			e.Total = ad.Uint16()
		case unix.NFTA_QUEUE_FLAGS:
			e.Flag = QueueFlag(ad.Uint16())
		}
	}
	return ad.Err()
}
