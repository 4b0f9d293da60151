//! The system's accounts: user and group names from /etc/passwd and
//! /etc/group, read as root-owned configuration is (`secure::read_trusted`), each
//! at most once per call. The policy's grants and the worker identity
//! ([`crate::privilege::Worker`]) both ask them.

use std::cell::OnceCell;
use std::path::Path;

use crate::error::Failure;
use crate::privilege::PASSWD;
use crate::secure::read_trusted;

/// Where the names of groups come from.
const GROUP: &str = "/etc/group";

/// Where user and group names come from.
pub trait Accounts {
    /// All names of passwd entries with this uid.
    fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure>;
    /// The gid of a group name.
    fn group_id(&self, name: &str) -> Result<Option<u32>, Failure>;
    /// The groups of `uid` as the account files give them: its passwd
    /// entry's gid first, then every group whose member list names it.
    fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure>;
}

/// /etc/passwd and /etc/group, read directly (no NSS: the binary is static
/// and must not load code chosen by the machine's configuration), each at
/// most once per call, however many questions are asked of them.
#[derive(Debug, Default)]
pub struct SystemAccounts {
    passwd: OnceCell<String>,
    group: OnceCell<String>,
}

impl SystemAccounts {
    /// The text of /etc/passwd, read (as the policy is: `secure::read_trusted`)
    /// on first use.
    pub fn passwd(&self) -> Result<&str, Failure> {
        cached(&self.passwd, PASSWD)
    }

    fn group(&self) -> Result<&str, Failure> {
        cached(&self.group, GROUP)
    }
}

/// The trusted file at `path`, read into `cell` the first time.
fn cached<'a>(cell: &'a OnceCell<String>, path: &str) -> Result<&'a str, Failure> {
    if let Some(text) = cell.get() {
        return Ok(text);
    }
    let text = read_trusted(Path::new(path))?;
    Ok(cell.get_or_init(|| text))
}

impl Accounts for SystemAccounts {
    fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure> {
        Ok(self
            .passwd()?
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
            .collect())
    }

    fn group_id(&self, name: &str) -> Result<Option<u32>, Failure> {
        Ok(self.group()?.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then_some(())?;
            f.nth(1)?.parse::<u32>().ok()
        }))
    }

    fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure> {
        let passwd = self.passwd()?;
        let mut names = Vec::new();
        let mut groups = Vec::new();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid) {
                names.push(f[0]);
                groups.extend(f[3].parse::<u32>().ok());
            }
        }
        groups.truncate(1);
        groups.extend(self.group()?.lines().filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let listed = f.len() >= 4 && f[3].split(',').any(|m| names.contains(&m));
            listed.then(|| f[2].parse::<u32>().ok()).flatten()
        }));
        Ok(groups)
    }
}
