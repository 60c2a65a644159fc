//! A real operating-system tree: this machine's /usr/share (tens of thousands of files, half a
//! GB), committed as a directory and as a tar archive, must give one image, which mounts
//! identical to the source, contents included.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

use sealroot_testkit::{assert_same, mount_test, scratch, Fields, Snapshot};

const SOURCE: &str = "/usr/share";

mod common;
use common::{ok as sealroot, TMP};

mount_test! {
    /// /usr/share as directory and as tar: one image; mounted, it is /usr/share.
    fn usr_share_round_trips_through_the_repository() {
        if !Path::new(SOURCE).is_dir() {
            sealroot_testkit::skip(
                "usr_share_round_trips_through_the_repository",
                &format!("{SOURCE} is not there"),
            );
            return;
        }
        let tmp = scratch(TMP, "os-tree-");
        let t = tmp.path();
        let repo = t.join("repo");
        sealroot(&repo, &["init"]);
        let image_of = |out: String| -> String {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v["image"].as_str().unwrap().to_owned()
        };
        let from_dir = image_of(sealroot(&repo, &["commit", "--json", "--ref", "os/dir", SOURCE]));
        let tar = t.join("share.tar");
        let st = Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", SOURCE, "-cf"])
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of {SOURCE}");
        let from_tar = image_of(sealroot(
            &repo,
            &["commit", "--json", "--ref", "os/tar", tar.to_str().unwrap()],
        ));
        assert_eq!(from_dir, from_tar, "the directory and its tar give one image");
        let mnt = t.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        sealroot(&repo, &["mount", "os/dir", mnt.to_str().unwrap()]);
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        let want = Snapshot::of_dir(Path::new(SOURCE), fields);
        assert!(want.0.len() > 1000, "{SOURCE} is a real tree");
        assert_same(&want, &Snapshot::of_dir(&mnt, fields));
        println!("{} entries of {SOURCE} match", want.0.len());
        let fsck = sealroot(&repo, &["fsck"]);
        assert!(fsck.contains("no problems found"), "{fsck}");
    }
}
